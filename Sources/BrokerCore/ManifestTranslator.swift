import Foundation
import JSON

/// The workload kinds `POST /v1/allocations/from-manifest` accepts.
public enum ManifestKind: String, Codable, Sendable, CaseIterable {
    case pod = "Pod"
    case deployment = "Deployment"

    /// The `apiVersion` Kubernetes serves the kind under.
    public var apiVersion: String {
        switch self {
        case .pod: "v1"
        case .deployment: "apps/v1"
        }
    }

    /// Where the pod template sits: the Pod itself, or a Deployment's `spec.template`.
    var templatePath: [String] {
        switch self {
        case .pod: []
        case .deployment: ["spec", "template"]
        }
    }
}

/// Whose label keys a manifest speaks; the region is injected back in the same words.
public enum LabelVocabulary: String, Codable, Sendable, CaseIterable {
    /// `alibabacloud.com/...` labels, `k8s.aliyun.com/...` annotations (ACK One, ACS, ECI).
    case alibabaCloud
    /// `ctyun.cn/...` labels.
    case ctyun
    /// Neither: plain Kubernetes.
    case neutral

    /// The pod label that names the region in this vocabulary.
    public var regionLabel: String {
        switch self {
        case .alibabaCloud: ManifestTranslator.Labels.alibabaRegion
        case .ctyun: ManifestTranslator.Labels.ctyunRegion
        case .neutral: ManifestTranslator.Labels.topologyRegion
        }
    }
}

/// A Pod or Deployment understood as allocation requests.
public struct ManifestTranslation: Sendable, Equatable {
    public var kind: ManifestKind
    public var vocabulary: LabelVocabulary
    /// The manifest as sent, rewritten per region by `ManifestTranslator.regionManifests`.
    public var manifest: JSONValue
    /// What to ask for, in order: one request per instance type of `k8s.aliyun.com/eci-use-specs`
    /// (the first that can be satisfied wins), else exactly one request without an instance type.
    public var requests: [AllocationRequest]
}

/// Kubernetes manifests in, allocation requests and label-injected manifests out. Pure: the
/// API turns YAML into a `JSONValue` first.
///
/// Read from the pod template (a Pod's own metadata/spec, a Deployment's `spec.template`):
/// - labels `alibabacloud.com/{compute-class,compute-qos,gpu-model-series,serverless-region-id}`
///   and `ctyun.cn/{compute-class,compute-qos,gpu-model-series,specified-region-id}` (the two
///   vocabularies use the broker's own words: `general-purpose`, `performance`, `gpu`;
///   `default`, `best-effort`); every label also becomes a request label, so a tenant's named
///   policy selects the workload the way a ResourcePolicy selects pods;
/// - the annotation `k8s.aliyun.com/eci-use-specs`: comma-separated instance types, tried in order;
/// - per container `resources.requests`, else `resources.limits`, summed over containers:
///   `cpu`, `memory`, `nvidia.com/gpu` (init containers count as Kubernetes counts them: the
///   pod needs the larger of the containers' sum and the largest init container);
/// - a Deployment's `spec.replicas` (default 1); a Pod is one replica.
/// Without a class label the class is `gpu` when GPUs are requested, else `general-purpose`;
/// QoS defaults to `default`. A pod that requests no CPU (or no memory) is sized at
/// `defaultCPU` cores (`defaultMemoryGiB` GiB), the smallest serverless shape.
public enum ManifestTranslator {
    public static let defaultCPU = 0.25
    public static let defaultMemoryGiB = 0.5
    /// Longest `metadata.name` Kubernetes allows; the per-region suffix must fit.
    public static let maxNameLength = 253

    public enum Labels {
        public static let alibabaClass = "alibabacloud.com/compute-class"
        public static let alibabaQoS = "alibabacloud.com/compute-qos"
        public static let alibabaSeries = "alibabacloud.com/gpu-model-series"
        public static let alibabaRegion = "alibabacloud.com/serverless-region-id"
        public static let ctyunClass = "ctyun.cn/compute-class"
        public static let ctyunQoS = "ctyun.cn/compute-qos"
        public static let ctyunSeries = "ctyun.cn/gpu-model-series"
        public static let ctyunRegion = "ctyun.cn/specified-region-id"
        public static let topologyRegion = "topology.kubernetes.io/region"
        public static let useSpecs = "k8s.aliyun.com/eci-use-specs"
        public static let gpuResource = "nvidia.com/gpu"
    }

    // MARK: manifest → requests

    public static func translate(_ manifest: JSONValue) throws(ValidationFailure) -> ManifestTranslation {
        let errors = FieldErrorCollector()
        guard let root = errors.object(manifest) else { throw ValidationFailure(errors: errors.errors) }

        guard let kindName = root.string("kind", required: true) else { throw ValidationFailure(errors: errors.errors) }
        guard let kind = ManifestKind(rawValue: kindName) else {
            throw ValidationFailure(field: "kind", message: "must be Pod or Deployment, not \(kindName)")
        }
        if let apiVersion = root.string("apiVersion", required: true), apiVersion != kind.apiVersion {
            errors.add("apiVersion", "must be \(kind.apiVersion) for kind \(kind.rawValue)")
        }
        var name: String?
        if let metadata = root.object("metadata", required: true) {
            name = metadata.string("name", required: true, maxLength: maxNameLength)
        }

        // The pod template and its parts.
        var replicas = 1
        var template: ObjectReader? = root
        if kind == .deployment, let spec = root.object("spec", required: true) {
            if let count = spec.integer("replicas", in: 1...AllocationRequest.maxReplicas) { replicas = count }
            template = spec.object("template", required: true)
        } else if kind == .deployment {
            template = nil
        }
        let templateMetadata = template?.object("metadata", required: kind == .deployment)
        let podSpec = template?.object("spec", required: true)
        let labels = templateMetadata?.labels("labels") ?? [:]
        let labelsPath = templateMetadata?.field("labels") ?? "metadata.labels"
        let annotations = templateMetadata.flatMap { readAnnotations($0) } ?? [:]
        let annotationsPath = templateMetadata?.field("annotations") ?? "metadata.annotations"

        // Vocabulary: the region label is written back in the words the manifest uses.
        let vocabulary: LabelVocabulary
        if labels.keys.contains(where: { $0.hasPrefix("ctyun.cn/") }) {
            vocabulary = .ctyun
        } else if labels.keys.contains(where: { $0.hasPrefix("alibabacloud.com/") })
            || annotations.keys.contains(where: { $0.hasPrefix("k8s.aliyun.com/") })
        {
            vocabulary = .alibabaCloud
        } else {
            vocabulary = .neutral
        }

        func label(_ keys: [String]) -> (key: String, value: String)? {
            let found = keys.compactMap { key in labels[key].map { (key: key, value: $0) } }
            if found.count > 1, Set(found.map(\.value)).count > 1 {
                errors.add(
                    FieldPath.child(labelsPath, found[1].key), "disagrees with \(found[0].key): \(found[0].value)")
            }
            return found.first
        }

        // Resources.
        let resources = podSpec.map { readResources($0, errors: errors) }

        // Class, QoS, series, region.
        var computeClass: ComputeClass?
        let classLabel = label([Labels.alibabaClass, Labels.ctyunClass])
        if let given = classLabel {
            computeClass = vocabularyValue(given.value, ComputeClass.self, at: FieldPath.child(labelsPath, given.key), errors)
        } else if let resources {
            computeClass = resources.gpus > 0 ? .gpu : .generalPurpose
        }
        var qos: QoS? = .default
        if let given = label([Labels.alibabaQoS, Labels.ctyunQoS]) {
            qos = vocabularyValue(given.value, QoS.self, at: FieldPath.child(labelsPath, given.key), errors)
        }
        var gpuSeries: [String] = []
        if let given = label([Labels.alibabaSeries, Labels.ctyunSeries]) {
            let path = FieldPath.child(labelsPath, given.key)
            if computeClass != nil && computeClass != .gpu {
                errors.add(path, "only allowed for compute class gpu")
            } else if given.value.isEmpty {
                errors.add(path, "must not be empty")
            } else {
                gpuSeries = [given.value]
            }
        }
        var region: String?
        if let given = label([Labels.alibabaRegion, Labels.ctyunRegion, Labels.topologyRegion]) {
            if Rules.isRegionId(given.value) {
                region = given.value
            } else {
                errors.add(FieldPath.child(labelsPath, given.key), "must be a region id matching \(Rules.regionIdPattern)")
            }
        }
        var gpuCount = 0
        if let computeClass, let resources {
            if computeClass == .gpu {
                gpuCount = max(1, resources.gpus)
            } else if resources.gpus > 0, let given = classLabel {
                errors.add(
                    FieldPath.child(labelsPath, given.key),
                    "is \(computeClass.rawValue) but the containers request \(Labels.gpuResource)")
            }
        }

        // Instance types to try, in order.
        var instanceTypes: [String?] = [nil]
        if let specs = annotations[Labels.useSpecs] {
            let path = FieldPath.child(annotationsPath, Labels.useSpecs)
            var types: [String] = []
            for part in specs.split(separator: ",", omittingEmptySubsequences: false) {
                let type = part.trimmingCharacters(in: .whitespaces)
                if type.isEmpty || type.count > 128 {
                    errors.add(path, "must list instance types of 1 to 128 characters, separated by commas")
                    types = []
                    break
                }
                if !types.contains(type) { types.append(type) }
            }
            if !types.isEmpty { instanceTypes = types }
        }

        guard errors.isEmpty, let computeClass, let qos, let resources, name != nil else {
            if errors.isEmpty { errors.add("", "is not a workload the broker can read") }
            throw ValidationFailure(errors: errors.errors)
        }
        let requests = instanceTypes.map { type in
            AllocationRequest(
                shape: ComputeShape(
                    computeClass: computeClass, qos: qos, gpuSeries: gpuSeries, gpuCount: gpuCount,
                    cpu: resources.cpu > 0 ? resources.cpu : defaultCPU,
                    memoryGiB: resources.memoryGiB > 0 ? resources.memoryGiB : defaultMemoryGiB,
                    instanceType: type),
                replicas: replicas, region: region, labels: labels)
        }
        return ManifestTranslation(kind: kind, vocabulary: vocabulary, manifest: manifest, requests: requests)
    }

    /// Annotation values are strings; anything else is reported.
    private static func readAnnotations(_ metadata: ObjectReader) -> [String: String]? {
        guard let value = metadata.value("annotations") else { return nil }
        guard case .object(let members) = value else {
            metadata.errors.add(metadata.field("annotations"), "must be an object of strings, not \(value.typeName)")
            return nil
        }
        var result: [String: String] = [:]
        for key in members.keys.sorted() {
            guard case .string(let s) = members[key]! else {
                metadata.errors.add(FieldPath.child(metadata.field("annotations"), key), "must be a string")
                continue
            }
            result[key] = s
        }
        return result
    }

    /// A class or QoS label value in the broker's words (case and surrounding blanks ignored).
    private static func vocabularyValue<E: RawRepresentable & CaseIterable>(
        _ value: String, _ type: E.Type, at path: String, _ errors: FieldErrorCollector
    ) -> E? where E.RawValue == String {
        if let result = E(rawValue: value.trimmingCharacters(in: .whitespaces).lowercased()) { return result }
        errors.add(path, "must be one of: \(E.allCases.map(\.rawValue).joined(separator: ", "))")
        return nil
    }

    struct Resources {
        var cpu = 0.0
        var memoryGiB = 0.0
        var gpus = 0
    }

    /// The pod's effective requests: max(sum over containers, largest init container).
    private static func readResources(_ podSpec: ObjectReader, errors: FieldErrorCollector) -> Resources {
        var total = Resources()
        if let containers = podSpec.array("containers", required: true, maxItems: 64) {
            for (path, container) in containers {
                let r = readContainer(container, at: path, errors: errors)
                total.cpu += r.cpu
                total.memoryGiB += r.memoryGiB
                total.gpus += r.gpus
            }
        }
        if let inits = podSpec.array("initContainers", allowEmpty: true, maxItems: 64) {
            for (path, container) in inits {
                let r = readContainer(container, at: path, errors: errors)
                total.cpu = max(total.cpu, r.cpu)
                total.memoryGiB = max(total.memoryGiB, r.memoryGiB)
                total.gpus = max(total.gpus, r.gpus)
            }
        }
        let resourcesPath = FieldPath.child(podSpec.field("containers"), "resources")
        if total.cpu > AllocationRequest.maxResource {
            errors.add(resourcesPath, "requests more than \(Int(AllocationRequest.maxResource)) CPUs in total")
        }
        if total.memoryGiB > AllocationRequest.maxResource {
            errors.add(resourcesPath, "requests more than \(Int(AllocationRequest.maxResource)) GiB of memory in total")
        }
        if total.gpus > AllocationRequest.maxGPUCount {
            errors.add(resourcesPath, "requests more than \(AllocationRequest.maxGPUCount) GPUs in total")
        }
        return total
    }

    private static func readContainer(_ value: JSONValue, at path: String, errors: FieldErrorCollector) -> Resources {
        var result = Resources()
        guard let container = errors.object(value, at: path), let resources = container.object("resources") else {
            return result
        }
        let requests = resources.object("requests")
        let limits = resources.object("limits")
        /// requests[name], else limits[name], with the path it was read from.
        func quantity(_ name: String) -> (path: String, value: JSONValue)? {
            for reader in [requests, limits] {
                if let reader, let value = reader.value(name) { return (reader.field(name), value) }
            }
            return nil
        }
        if let q = quantity("cpu") {
            do throws(QuantityError) { result.cpu = try Quantity.cpu(q.value) } catch { errors.add(q.path, error.description) }
        }
        if let q = quantity("memory") {
            do throws(QuantityError) {
                result.memoryGiB = try Quantity.memoryGiB(q.value)
            } catch {
                errors.add(q.path, error.description)
            }
        }
        if let q = quantity(Labels.gpuResource) {
            do throws(QuantityError) {
                let gpus = try Quantity.cpu(q.value)
                if gpus != gpus.rounded() || gpus > Double(AllocationRequest.maxGPUCount) {
                    errors.add(q.path, "must be a whole number of GPUs from 0 to \(AllocationRequest.maxGPUCount)")
                } else {
                    result.gpus = Int(gpus)
                }
            } catch {
                errors.add(q.path, error.description)
            }
        }
        return result
    }

    // MARK: per-region manifests

    /// One manifest per region of `shares` (in that order): a copy of the input with the
    /// region's replica count (Deployment), `metadata.name` suffixed with `-<region>`, the
    /// region in the pod template's labels in the input's vocabulary and in its `nodeSelector`
    /// as `topology.kubernetes.io/region`. With `instanceType` (the one chosen from several
    /// `eci-use-specs`), the annotation names only that type.
    public static func regionManifests(
        _ translation: ManifestTranslation, shares: [(region: String, replicas: Int)], instanceType: String? = nil
    ) -> [JSONValue] {
        let template = translation.kind.templatePath
        return shares.map { share in
            var m = translation.manifest
            if let name = m["metadata"]?["name"]?.stringValue {
                m = m.setting(["metadata", "name"], to: .string("\(name)-\(share.region)"))
            }
            if translation.kind == .deployment {
                m = m.setting(["spec", "replicas"], to: .number(Double(share.replicas)))
            }
            m = m.setting(template + ["metadata", "labels", translation.vocabulary.regionLabel], to: .string(share.region))
            m = m.setting(template + ["spec", "nodeSelector", Labels.topologyRegion], to: .string(share.region))
            if let instanceType, m.value(at: template + ["metadata", "annotations", Labels.useSpecs]) != nil {
                m = m.setting(template + ["metadata", "annotations", Labels.useSpecs], to: .string(instanceType))
            }
            return m
        }
    }

    /// Replicas per region in order of first appearance: what `regionManifests` takes.
    public static func shares(regions: [String]) -> [(region: String, replicas: Int)] {
        var result: [(region: String, replicas: Int)] = []
        for region in regions {
            if let i = result.firstIndex(where: { $0.region == region }) {
                result[i].replicas += 1
            } else {
                result.append((region, 1))
            }
        }
        return result
    }
}

extension JSONValue {
    /// The value at a path of object keys, nil when any step is missing or not an object.
    public func value(at path: [String]) -> JSONValue? {
        var current: JSONValue? = self
        for key in path { current = current?[key] }
        return current
    }

    /// A copy with `value` at `path`, creating objects along the way (replacing non-objects).
    public func setting(_ path: [String], to value: JSONValue) -> JSONValue {
        guard let key = path.first else { return value }
        var members = objectValue ?? [:]
        members[key] = (members[key] ?? .object([:])).setting(Array(path.dropFirst()), to: value)
        return .object(members)
    }
}
