import Foundation
import JSON

/// A kind whose pod templates must be placed together in one region (a gang): where its
/// templates are and how many pods each stands for, read from the document.
public struct GroupKind: Sendable {
    public let kind: String
    /// Its API group, as the start of `apiVersion`.
    public let group: String
    let sites: @Sendable (JSONValue) -> [TemplateSite]

    public var name: String { "\(kind) (\(group)…)" }
}

extension ManifestKinds {
    public static let groups: [GroupKind] = [
        GroupKind(kind: "LeaderWorkerSet", group: "leaderworkerset.x-k8s.io/", sites: leaderWorkerSites),
        GroupKind(kind: "RayCluster", group: "ray.io/") { rayClusterSites($0, at: ["spec"]) },
        GroupKind(kind: "RayJob", group: "ray.io/") { rayClusterSites($0, at: ["spec", "rayClusterSpec"]) },
        GroupKind(kind: "RayService", group: "ray.io/") { rayClusterSites($0, at: ["spec", "rayClusterConfig"]) },
        GroupKind(kind: "PyTorchJob", group: "kubeflow.org/") { replicaSpecSites($0, "pytorchReplicaSpecs") },
        GroupKind(kind: "TFJob", group: "kubeflow.org/") { replicaSpecSites($0, "tfReplicaSpecs") },
        GroupKind(kind: "MPIJob", group: "kubeflow.org/") { replicaSpecSites($0, "mpiReplicaSpecs") },
        GroupKind(kind: "InferenceService", group: "serving.kserve.io/", sites: inferenceServiceSites),
        GroupKind(kind: "Service", group: "serving.knative.dev/", sites: knativeSites),
        GroupKind(kind: "RoleBasedGroup", group: "workloads.x-k8s.io/", sites: roleBasedGroupSites),
        GroupKind(kind: "JobSet", group: "jobset.x-k8s.io/", sites: jobSetSites),
        GroupKind(kind: "Job", group: "batch.volcano.sh/", sites: volcanoJobSites),
    ]

    /// A count at `path`, `otherwise` when absent or not a whole number ≥ 0.
    static func count(_ document: JSONValue, _ path: [String], otherwise: Int) -> Int {
        guard let n = document.value(at: path)?.numberValue, n >= 0, n == n.rounded(), n <= 1e6 else { return otherwise }
        return Int(n)
    }

    /// A template at `path` (`metadata` and `spec` inside it).
    static func template(_ name: String, _ path: [String], replicas: Int) -> TemplateSite {
        TemplateSite(name: name, metadataPath: path + ["metadata"], specPath: path + ["spec"], replicas: replicas)
    }

    /// `replicas` groups of `size` pods: the leader template (when given) once per group,
    /// the worker template for the other pods.
    static func leaderWorkerSites(_ d: JSONValue) -> [TemplateSite] {
        let groups = count(d, ["spec", "replicas"], otherwise: 1)
        let size = max(1, count(d, ["spec", "leaderWorkerTemplate", "size"], otherwise: 1))
        let base = ["spec", "leaderWorkerTemplate"]
        guard d.value(at: base + ["leaderTemplate"]) != nil else {
            return [template("worker", base + ["workerTemplate"], replicas: groups * size)]
        }
        return [
            template("leader", base + ["leaderTemplate"], replicas: groups),
            template("worker", base + ["workerTemplate"], replicas: groups * (size - 1)),
        ]
    }

    /// The head, and each worker group's replicas × hosts.
    static func rayClusterSites(_ d: JSONValue, at base: [String]) -> [TemplateSite] {
        var sites = [template("head", base + ["headGroupSpec", "template"], replicas: 1)]
        for (index, group) in (d.value(at: base + ["workerGroupSpecs"])?.arrayValue ?? []).enumerated() {
            let path = base + ["workerGroupSpecs", String(index)]
            let replicas = count(d, path + ["replicas"], otherwise: count(d, path + ["minReplicas"], otherwise: 1))
            let hosts = max(1, count(d, path + ["numOfHosts"], otherwise: 1))
            sites.append(template(group["groupName"]?.stringValue ?? "worker-\(index)", path + ["template"], replicas: replicas * hosts))
        }
        return sites
    }

    /// Kubeflow's replica specs (`Master`, `Worker`, `Launcher`...), each `replicas` (default 1).
    static func replicaSpecSites(_ d: JSONValue, _ key: String) -> [TemplateSite] {
        let specs = d.value(at: ["spec", key])?.objectValue ?? [:]
        return specs.keys.sorted().map { role in
            let path = ["spec", key, role]
            return template(role, path + ["template"], replicas: count(d, path + ["replicas"], otherwise: 1))
        }
    }

    /// KServe's predictor (and transformer, explainer): a pod spec with `minReplicas`
    /// (default 1; 0 still needs one pod when it serves) and labels beside it.
    static func inferenceServiceSites(_ d: JSONValue) -> [TemplateSite] {
        ["predictor", "transformer", "explainer"].compactMap { component in
            let path = ["spec", component]
            guard d.value(at: path) != nil else { return nil }
            return TemplateSite(
                name: component, metadataPath: path, specPath: path,
                replicas: max(1, count(d, path + ["minReplicas"], otherwise: 1)), frameworkContainers: true)
        }
    }

    /// Knative's revision template; its minimum scale (at least one pod when it serves).
    static func knativeSites(_ d: JSONValue) -> [TemplateSite] {
        let annotations = ["spec", "template", "metadata", "annotations"]
        let minScale = ["autoscaling.knative.dev/min-scale", "autoscaling.knative.dev/minScale"].lazy
            .compactMap { d.value(at: annotations + [$0])?.stringValue.flatMap { Int($0) } }.first
        return [template("revision", ["spec", "template"], replicas: max(1, minScale ?? 1))]
    }

    /// Each role's template, `replicas` × its leader-worker `size`.
    static func roleBasedGroupSites(_ d: JSONValue) -> [TemplateSite] {
        (d.value(at: ["spec", "roles"])?.arrayValue ?? []).enumerated().map { index, role in
            let path = ["spec", "roles", String(index)]
            let size = max(1, count(d, path + ["leaderWorkerSet", "size"], otherwise: 1))
            return template(role["name"]?.stringValue ?? "role-\(index)", path + ["template"],
                            replicas: count(d, path + ["replicas"], otherwise: 1) * size)
        }
    }
}

extension ManifestKinds {
    /// Volcano's tasks: each `tasks[i].template`, `replicas` pods (default 1).
    static func volcanoJobSites(_ d: JSONValue) -> [TemplateSite] {
        (d.value(at: ["spec", "tasks"])?.arrayValue ?? []).enumerated().map { index, task in
            let path = ["spec", "tasks", String(index)]
            return template(task["name"]?.stringValue ?? "task-\(index)", path + ["template"],
                            replicas: count(d, path + ["replicas"], otherwise: 1))
        }
    }

    /// Each replicated Job's pod template: `replicas` Jobs of `parallelism` pods (at most
    /// `completions`).
    static func jobSetSites(_ d: JSONValue) -> [TemplateSite] {
        (d.value(at: ["spec", "replicatedJobs"])?.arrayValue ?? []).enumerated().map { index, job in
            let path = ["spec", "replicatedJobs", String(index)]
            let jobSpec = path + ["template", "spec"]
            var pods = count(d, jobSpec + ["parallelism"], otherwise: 1)
            if let completions = d.value(at: jobSpec + ["completions"])?.numberValue, completions >= 1 {
                pods = min(pods, Int(completions))
            }
            return template(job["name"]?.stringValue ?? "job-\(index)", jobSpec + ["template"],
                            replicas: count(d, path + ["replicas"], otherwise: 1) * pods)
        }
    }
}

extension ManifestTranslator {
    /// A group workload: every template with pods becomes a component; the components'
    /// region pins must agree.
    static func translateGroup(
        _ manifest: JSONValue, kind: GroupKind, apiVersion: String, catalog: InstanceCatalog, path: String
    ) throws(ValidationFailure) -> ManifestTranslation {
        let errors = FieldErrorCollector()
        guard let root = errors.object(manifest, at: path) else { throw ValidationFailure(errors: errors.errors) }
        checkName(root, errors: errors)
        let allSites = kind.sites(manifest)
        if allSites.isEmpty { errors.add(FieldPath.child(path, "spec"), "has no pod template") }
        let sites = allSites.filter { $0.replicas > 0 }
        let total = sites.reduce(0) { $0 + $1.replicas }
        if total > AllocationRequest.maxReplicas {
            errors.add(FieldPath.child(path, "spec"), "asks for \(total) pods; at most \(AllocationRequest.maxReplicas) are placed together")
        }
        var components: [ManifestTranslation.Component] = []
        var vocabularies: [LabelVocabulary] = []
        for site in sites {
            do throws(ValidationFailure) {
                let (vocabulary, requests) = try readTemplate(manifest, site: site, path: path, catalog: catalog, errors: errors)
                components.append(.init(site: site, requests: requests))
                vocabularies.append(vocabulary)
            } catch {
                continue
            }
        }
        let pins = Set(components.compactMap { $0.requests[0].region })
        if pins.count > 1 {
            errors.add(path, "its pod templates pin different regions (\(pins.sorted().joined(separator: ", "))); they must run together")
        }
        guard errors.isEmpty else { throw ValidationFailure(errors: errors.errors) }
        let workload = WorkloadKind(
            kind: kind.kind, apiVersions: [apiVersion], templatePath: [], replicasPath: nil, selectorPath: nil,
            completionsPath: nil)
        var translation = ManifestTranslation(
            kind: workload, vocabulary: vocabularies.first { $0 != .neutral } ?? .neutral, manifest: manifest,
            components: components, together: true)
        translation.idleSites = allSites.filter { $0.replicas == 0 }
        return translation
    }

    /// The regions a group may go to, among `regions` (in the caller's order): those every
    /// component's pins and region affinity allow.
    public static func allowedRegions(_ translation: ManifestTranslation, among regions: [String]) -> [String] {
        regions.filter { region in
            translation.components.allSatisfy { component in
                let request = component.requests[0]
                if let pinned = request.region { return pinned == region }
                if let allowed = request.placement?.units.first?.regions { return allowed.contains(region) }
                return true
            }
        }
    }
}
