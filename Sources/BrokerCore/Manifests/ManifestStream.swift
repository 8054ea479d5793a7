import Foundation
import JSON

/// A manifest file as people write them: several documents (a YAML stream, or `kind: List`),
/// some of them workloads to place, the others returned beside them.
public struct ManifestPlan: Sendable, Equatable {
    public enum Entry: Sendable, Equatable {
        case workload(ManifestTranslation)
        /// Returned unchanged but for server-set fields: once per region, or once overall.
        case passThrough(JSONValue, clusterScoped: Bool)
    }

    /// In document order, `List` items in place of their list.
    public var entries: [Entry]
    /// Each policy object in the file and the workloads it governed (`ManifestPolicies`).
    public var policyOutcomes: [PolicyOutcome] = []
    /// What the answer must tell: documents passed through without being understood,
    /// workloads with nothing to place, policy fields not implemented.
    public var warnings: [String] = []

    public var workloads: [ManifestTranslation] {
        entries.compactMap { if case .workload(let t) = $0 { t } else { nil } }
    }

    /// Replicas of every workload together: at most this many regions hold copies.
    public var replicaCount: Int {
        workloads.reduce(0) { $0 + ($1.together ? 1 : $1.requests[0].replicas) }
    }
}

extension ManifestTranslator {
    /// Reads every document; reports each one's problems under `documents[i]` (only the
    /// field path when there is one document), and refuses a stream with no workload.
    public static func plan(_ documents: [JSONValue], catalog: InstanceCatalog = .empty) throws(ValidationFailure) -> ManifestPlan {
        var entries: [ManifestPlan.Entry] = []
        var policies: [ManifestPolicy] = []
        var warnings: [String] = []
        var errors: [FieldError] = []
        let single = documents.count == 1
        let documents = documents.map(\.withoutNulls)
        let items = documents.enumerated().flatMap { index, document in expandingLists(document, at: single ? "" : "documents[\(index)]") }
        // A List's items are documents too: a List of 100,000 Pods in one request is not one document.
        guard items.count <= maxDocuments else {
            throw ValidationFailure(
                field: single ? "items" : "documents", message: "holds \(items.count) documents once List items are counted; at most \(maxDocuments)")
        }
        var catalog = catalog
        catalog.claims = DeviceClaims(items.map(\.1))
        for (itemPath, item) in items {
            do throws(ValidationFailure) {
                if let policy = try ManifestPolicies.read(item, at: itemPath) {
                    policies.append(policy)
                    entries.append(.passThrough(policy.document, clusterScoped: true))
                    continue
                }
                let entry = try planEntry(item, at: itemPath, catalog: catalog)
                entries.append(entry.entry)
                if let warning = entry.warning { warnings.append(warning) }
            } catch {
                errors += error.errors
            }
        }
        if !errors.isEmpty { throw ValidationFailure(errors: errors) }
        var plan = ManifestPlan(entries: entries, warnings: warnings)
        if plan.workloads.isEmpty {
            let policiesNote = policies.isEmpty ? "" : " (a file of policies alone is stored with PUT /v1/policies/{name}, as `gpubroker apply` does)"
            throw ValidationFailure(
                field: single ? "kind" : "documents",
                message: "holds no workload to place\(policiesNote). Supported: \(ManifestKinds.supportedList)")
        }
        try ManifestPolicies.govern(&plan, policies)
        return plan
    }

    /// Documents a manifest may hold, `List` items counted one by one.
    public static let maxDocuments = 500

    /// A `List` (`kind: List` or `…List` with `items`) stands for its items.
    static func expandingLists(_ document: JSONValue, at path: String) -> [(String, JSONValue)] {
        guard let kind = document["kind"]?.stringValue, kind.hasSuffix("List"), case .array(let items)? = document["items"]
        else { return [(path, document)] }
        let itemsPath = FieldPath.child(path, "items")
        return items.enumerated().map { (FieldPath.index(itemsPath, $0.offset), $0.element) }
    }

    private static func planEntry(
        _ document: JSONValue, at path: String, catalog: InstanceCatalog
    ) throws(ValidationFailure) -> (entry: ManifestPlan.Entry, warning: String?) {
        let errors = FieldErrorCollector()
        guard let root = errors.object(document, at: path) else { throw ValidationFailure(errors: errors.errors) }
        let kind = root.string("kind", required: true)
        let apiVersion = root.string("apiVersion", required: true)
        guard let kind, let apiVersion else { throw ValidationFailure(errors: errors.errors) }
        let translation: ManifestTranslation
        switch ManifestKinds.classify(kind: kind, apiVersion: apiVersion) {
        case .group(let group):
            translation = try translateGroup(document, kind: group, apiVersion: apiVersion, catalog: catalog, path: path)
        case .other(.workload(let workload)):
            translation = try translate(document, kind: workload, catalog: catalog, path: path)
        case .other(.passThrough(let clusterScoped)):
            return (.passThrough(strippingServerFields(document), clusterScoped: clusterScoped), nil)
        case .other(.refused(let reason)):
            throw ValidationFailure(field: root.field("kind"), message: reason)
        case .other(.unknown):
            let group = apiVersion.contains("/") ? String(apiVersion.split(separator: "/")[0]) : "core"
            // A document with a pod template runs pods: placing it blind would ignore what it asks for.
            if ManifestKinds.holdsPodTemplate(document) {
                throw ValidationFailure(
                    field: root.field("kind"),
                    message: "\(kind) of API group \(group) runs pods, but the broker does not know where this kind "
                        + "keeps its pod templates and replicas. Supported: \(ManifestKinds.supportedList)")
            }
            let name = document["metadata"]?["name"]?.stringValue.map { " \($0)" } ?? ""
            return (.passThrough(strippingServerFields(document), clusterScoped: true),
                    "\(path.isEmpty ? "" : "\(path): ")\(kind)\(name) (API group \(group)) is not a kind the broker knows "
                        + "and runs no pods: returned once, unchanged")
        }
        let name = document["metadata"]?["name"]?.stringValue ?? kind
        return (.workload(translation), translation.isEmpty
            ? "\(kind) \(name) has no pods to run (replicas 0): nothing reserved, its copy returned once" : nil)
    }

    /// The answer's documents, each with its region (nil: cluster-scoped, once overall):
    /// cluster-scoped documents first, then for each region in order of first use the
    /// workloads' copies there and the namespaced documents, each in document order.
    /// `grants[i]` is what the i-th workload was granted: per region, or for a workload
    /// placed together, per component (all in one region).
    public static func output(_ plan: ManifestPlan, grants: [[RegionGrant]]) -> [(region: String?, manifest: JSONValue)] {
        var result: [(region: String?, manifest: JSONValue)] = []
        var regions: [String] = []
        var copies: [String: [JSONValue]] = [:]
        var namespaced: [JSONValue] = []
        var workloadIndex = 0
        for entry in plan.entries {
            switch entry {
            case .passThrough(let document, clusterScoped: true):
                result.append((nil, document))
            case .passThrough(let document, clusterScoped: false):
                namespaced.append(document)
            case .workload(let translation) where translation.isEmpty:
                workloadIndex += 1
                result.append((nil, strippingServerFields(translation.manifest)))
            case .workload(let translation):
                let regionGrants = grants[workloadIndex]
                workloadIndex += 1
                let placed: [(region: String, copy: JSONValue)] =
                    translation.together
                    ? [(regionGrants.first?.region ?? "", groupManifest(translation, grants: regionGrants))]
                    : Array(zip(regionGrants.map(\.region), regionManifests(translation, grants: regionGrants)))
                for (region, copy) in placed {
                    if copies[region] == nil { regions.append(region) }
                    copies[region, default: []].append(copy)
                }
            }
        }
        for region in regions {
            result += copies[region]!.map { (region, $0) }
            result += namespaced.map { (region, $0) }
        }
        return result
    }
}
