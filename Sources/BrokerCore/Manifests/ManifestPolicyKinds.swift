import Foundation
import JSON

// Each policy kind read into a `ManifestPolicy`. Every field is either turned into placement
// or named in a warning; malformed ones are refused with their path.
//
// ResourcePolicy (scheduling.alibabacloud.com): `selector` on pod labels, `strategy: prefer`,
// `units` in order of use (scale-in in reverse): `resource: idc` → on-premises regions,
// `eci` (and `acs`) → serverless regions, `ecs` (the default; `elastic` too) → the regions its
// `nodeSelector` names: a region key (`topology.kubernetes.io/region`, the seeds' region
// labels) names one region, other keys select regions by their labels. On idc and eci units
// only the region key is read (ACK applies `nodeSelector` to ecs units). `max` caps the unit,
// `podLabels` go on the pods it places.
//
// ctyun Policy (scheduling.ctyun.cn): the same, with `replicas` for `max`, `nodeSelector` or
// `schedulerNodeSelector` naming the region, and `resource: bc` (serverless virtual nodes).
// Either kind's words are read in the other.
//
// PropagationPolicy (policy.karmada.io, policy.one.alibabacloud.com): `resourceSelectors`
// pick objects; `clusterAffinity.clusterNames` are region ids (`labelSelector.matchLabels`
// selects regions by label, `exclude` removes names); `Divided` with `staticWeightList` is a
// spread by static weights, with `dynamicWeight: AvailableReplicas` (or `autoScaling.
// ecsProvision`) a spread by available replicas, with neither equal weights, `Aggregated`
// fills the regions in order. `Duplicated` (Karmada's default) runs every replica in every
// cluster: refused unless the affinity names one region, which is then the placement.

extension ManifestPolicies {
    /// The policy in `document`, or nil when it is not one of `kinds`.
    public static func read(_ document: JSONValue, at path: String) throws(ValidationFailure) -> ManifestPolicy? {
        guard isPolicy(document) else { return nil }
        let errors = FieldErrorCollector()
        guard let root = errors.object(document, at: path) else { throw ValidationFailure(errors: errors.errors) }
        let kind = root.string("kind", required: true) ?? ""
        let apiVersion = root.string("apiVersion", required: true) ?? ""
        let metadata = root.object("metadata", required: true)
        let name = metadata?.string("name", required: true, maxLength: ManifestTranslator.maxNameLength)
        let namespace = metadata?.string("namespace", maxLength: 63)
        var policy = ManifestPolicy(
            kind: kind, apiVersion: apiVersion, name: name ?? "", namespace: namespace,
            document: ManifestTranslator.strippingServerFields(document), path: path)
        var notes = Notes(title: policy.title)
        if let spec = root.object("spec", required: true) {
            switch kind {
            case "PropagationPolicy": readPropagation(spec, into: &policy, notes: &notes)
            default: readUnits(spec, into: &policy, notes: &notes, ctyun: kind == "Policy")
            }
        }
        guard errors.isEmpty else { throw ValidationFailure(errors: errors.errors) }
        policy.warnings = notes.lines
        return policy
    }

    /// Warnings naming what was read but not done, with the policy's title.
    struct Notes {
        let title: String
        var lines: [String] = []

        /// Every member of `reader` not in `handled`, as not implemented (field paths drop the
        /// document's own position: they are read in the policy).
        mutating func unread(_ reader: ObjectReader, handled: Set<String>, documentPath: String) {
            for key in reader.members.keys.sorted() where !handled.contains(key) {
                reader.allow(key)
                add(relative(reader.field(key), documentPath), "is not implemented: ignored")
            }
        }

        mutating func add(_ field: String, _ message: String) {
            lines.append("\(title): \(field) \(message)")
        }

        func relative(_ field: String, _ documentPath: String) -> String {
            documentPath.isEmpty ? field : String(field.dropFirst(documentPath.count + 1))
        }
    }

    static let regionKeys = ManifestTranslator.Labels.regionKeys

    /// ResourcePolicy and ctyun Policy: ordered units on pod labels.
    static func readUnits(_ spec: ObjectReader, into policy: inout ManifestPolicy, notes: inout Notes, ctyun: Bool) {
        let errors = spec.errors
        policy.podSelector = spec.labels("selector", required: true)
        if let strategy = spec.string("strategy"), strategy != "prefer" {
            errors.add(spec.field("strategy"), "must be prefer: units are used in order (the only strategy these policies have)")
        }
        var units: [PlacementUnit] = []
        for (path, item) in spec.array("units", required: true, maxItems: PlacementSpec.maxUnits) ?? [] {
            guard let reader = errors.object(item, at: path) else { continue }
            let resource = reader.string("resource", required: ctyun) ?? (ctyun ? "bc" : "ecs")
            // Each kind's word for the cap, and for the unit's node selector, read in both.
            let caps = ["max", "replicas"].map { reader.integer($0, in: 1...PlacementSpec.maxUnitReplicas) }
            let max = caps[0] ?? caps[1]
            var selectors: [(key: String, labels: [String: String])] = []
            for key in ["nodeSelector", "schedulerNodeSelector"] {
                if let labels = reader.labels(key) { selectors.append((key, labels)) }
            }
            let podLabels = reader.labels("podLabels") ?? [:]
            let unitPath = notes.relative(path, policy.path)
            var kind: RegionKind?
            switch resource {
            case "idc": kind = .onPremises
            case "eci", "acs", "bc": kind = .serverless
            case "ecs", "elastic": kind = nil
            default:
                errors.add(reader.field("resource"), "must be one of: idc, ecs, elastic, eci, acs, bc")
            }
            var region: String?
            var regionLabels: [String: String] = [:]
            for (key, labels) in selectors {
                for (label, value) in labels.sorted(by: { $0.key < $1.key }) {
                    let at = FieldPath.child(reader.field(key), label)
                    if regionKeys.contains(label) {
                        guard Rules.isRegionId(value) else {
                            errors.add(at, "must be a region id matching \(Rules.regionIdPattern)")
                            continue
                        }
                        if let region, region != value { errors.add(at, "names \(value) but the unit already names \(region)") }
                        region = value
                    } else if kind == nil {
                        regionLabels[label] = value
                    } else {
                        notes.add("\(unitPath).\(key).\(label)", "is ignored: only a region key selects regions in a \(resource) unit")
                    }
                }
            }
            notes.unread(
                reader, handled: ["resource", "max", "replicas", "nodeSelector", "schedulerNodeSelector", "podLabels"],
                documentPath: policy.path)
            let selector = kind != nil || !regionLabels.isEmpty ? RegionSelector(kind: kind, labels: regionLabels) : nil
            units.append(PlacementUnit(regions: [region ?? "*"], selector: selector, max: max))
            policy.unitPodLabels.append(podLabels)
        }
        notes.unread(spec, handled: ["selector", "strategy", "units"], documentPath: policy.path)
        policy.placement = PlacementPolicy(strategy: .prefer, units: units)
        if policy.unitPodLabels.allSatisfy(\.isEmpty) { policy.unitPodLabels = [] }
    }

    /// PropagationPolicy: objects selected, regions by affinity, replicas divided.
    static func readPropagation(_ spec: ObjectReader, into policy: inout ManifestPolicy, notes: inout Notes) {
        let errors = spec.errors
        for (path, item) in spec.array("resourceSelectors", required: true, maxItems: 64) ?? [] {
            guard let reader = errors.object(item, at: path) else { continue }
            let apiVersion = reader.string("apiVersion", required: true)
            let kind = reader.string("kind", required: true)
            let name = reader.string("name", maxLength: ManifestTranslator.maxNameLength)
            let namespace = reader.string("namespace", maxLength: 63)
            var matchLabels: [String: String]?
            if let labelSelector = reader.object("labelSelector") {
                matchLabels = labelSelector.labels("matchLabels")
                notes.unread(labelSelector, handled: ["matchLabels"], documentPath: policy.path)
            }
            notes.unread(reader, handled: ["apiVersion", "kind", "name", "namespace", "labelSelector"], documentPath: policy.path)
            if let apiVersion, let kind {
                policy.resourceSelectors.append(
                    ResourceSelector(apiVersion: apiVersion, kind: kind, name: name, namespace: namespace, matchLabels: matchLabels))
            }
        }
        var ecsProvision = false
        if let autoScaling = spec.object("autoScaling") {
            ecsProvision = autoScaling.bool("ecsProvision") ?? false
            notes.unread(autoScaling, handled: ["ecsProvision"], documentPath: policy.path)
        }
        let placement = spec.object("placement")
        notes.unread(spec, handled: ["resourceSelectors", "autoScaling", "placement"], documentPath: policy.path)
        guard let placement else {
            policy.refusal = FieldError(field: "spec.placement", message: "is required to place a workload: it names the regions")
            return
        }
        // The regions: names, or every region (matching labels).
        var names: [String]?
        var labels: [String: String] = [:]
        if let affinity = placement.object("clusterAffinity") {
            names = affinity.stringArray("clusterNames", maxItems: 256, itemMaxLength: 63, pattern: regionPattern)
            labels = affinity.object("labelSelector").map { selector in
                defer { notes.unread(selector, handled: ["matchLabels"], documentPath: policy.path) }
                return selector.labels("matchLabels") ?? [:]
            } ?? [:]
            if let exclude = affinity.stringArray("exclude", maxItems: 256, itemMaxLength: 63, pattern: regionPattern) {
                if let given = names {
                    names = given.filter { !exclude.contains($0) }
                } else {
                    notes.add("spec.placement.clusterAffinity.exclude", "is not implemented without clusterNames: ignored")
                }
            }
            notes.unread(affinity, handled: ["clusterNames", "labelSelector", "exclude"], documentPath: policy.path)
        }
        let selector = labels.isEmpty ? nil : RegionSelector(labels: labels)
        let scheduling = placement.object("replicaScheduling")
        notes.unread(placement, handled: ["clusterAffinity", "replicaScheduling"], documentPath: policy.path)
        let type = scheduling?.string("replicaSchedulingType") ?? "Duplicated"
        let preference = scheduling?.string("replicaDivisionPreference")
        let weights = scheduling?.object("weightPreference")
        var staticUnits: [PlacementUnit] = []
        var dynamic = ecsProvision
        if let weights {
            for (path, item) in weights.array("staticWeightList", maxItems: PlacementSpec.maxUnits) ?? [] {
                guard let entry = errors.object(item, at: path) else { continue }
                let weight = entry.integer("weight", required: true, in: 1...PlacementSpec.maxWeight)
                let target = entry.object("targetCluster", required: true)
                let targetNames = target?.stringArray("clusterNames", maxItems: 256, itemMaxLength: 63, pattern: regionPattern)
                let targetLabels = target?.object("labelSelector").map { selector in
                    defer { notes.unread(selector, handled: ["matchLabels"], documentPath: policy.path) }
                    return selector.labels("matchLabels") ?? [:]
                }
                if let target { notes.unread(target, handled: ["clusterNames", "labelSelector"], documentPath: policy.path) }
                notes.unread(entry, handled: ["weight", "targetCluster"], documentPath: policy.path)
                staticUnits.append(PlacementUnit(
                    regions: targetNames ?? ["*"], selector: targetLabels.map { RegionSelector(labels: $0) }, weight: weight ?? 1))
            }
            if let given = weights.string("dynamicWeight") {
                if given == "AvailableReplicas" {
                    dynamic = true
                } else {
                    errors.add(weights.field("dynamicWeight"), "must be AvailableReplicas")
                }
            }
            notes.unread(weights, handled: ["staticWeightList", "dynamicWeight"], documentPath: policy.path)
        }
        if let scheduling {
            notes.unread(
                scheduling, handled: ["replicaSchedulingType", "replicaDivisionPreference", "weightPreference"],
                documentPath: policy.path)
        }
        let all = PlacementUnit(regions: names ?? ["*"], selector: selector)
        switch (type, preference) {
        case ("Divided", "Aggregated"):
            policy.placement = PlacementPolicy(strategy: .prefer, units: [all])
        case ("Divided", "Weighted"), ("Divided", nil):
            if dynamic {
                policy.placement = PlacementPolicy(strategy: .spread, units: [all])
            } else if !staticUnits.isEmpty {
                policy.placement = PlacementPolicy(strategy: .spread, units: staticUnits)
            } else {
                policy.placement = PlacementPolicy(strategy: .spread, units: [PlacementUnit(regions: all.regions, selector: selector, weight: 1)])
            }
        case ("Divided", let other?):
            errors.add(scheduling!.field("replicaDivisionPreference"), "must be Aggregated or Weighted, not \(other)")
        case ("Duplicated", _):
            if let names, names.count == 1 {
                policy.placement = PlacementPolicy(strategy: .prefer, units: [all])
            } else {
                policy.refusal = FieldError(
                    field: "spec.placement.replicaScheduling.replicaSchedulingType",
                    message: "is Duplicated (the default): every replica in every cluster. The broker divides one workload's "
                        + "replicas over regions: set Divided, or name one region in clusterAffinity.clusterNames")
            }
        default:
            errors.add(scheduling?.field("replicaSchedulingType") ?? "spec.placement", "must be Duplicated or Divided, not \(type)")
        }
    }

    static let regionPattern = FieldPattern("a region id (\(Rules.regionIdPattern))") { Rules.isRegionId($0) }
}
