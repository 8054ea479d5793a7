import Foundation
import JSON

/// What one region of an allocation holds, as the per-region manifest must say it.
public struct RegionGrant: Sendable, Equatable {
    public var region: String
    public var replicas: Int
    /// Distinct instance types granted there, the most used first.
    public var instanceTypes: [String]
    /// Distinct GPU series granted there, the most used first.
    public var gpuSeries: [String]
    /// Labels the unit that placed these asks for on its pods (a policy's `podLabels`).
    public var podLabels: [String: String]

    public init(
        region: String, replicas: Int, instanceTypes: [String] = [], gpuSeries: [String] = [], podLabels: [String: String] = [:]
    ) {
        self.region = region
        self.replicas = replicas
        self.instanceTypes = instanceTypes
        self.gpuSeries = gpuSeries
        self.podLabels = podLabels
    }
}

extension ManifestTranslator {
    /// Fields the API server sets, which it refuses or misreads when sent back on create.
    static let serverSetMetadata = ["uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink"]
    static let serverSetAnnotations = ["deployment.kubernetes.io/revision"]

    /// A document without what the API server set: metadata fields, `status`, revision
    /// annotations (also in the pod templates' metadata at `metadataPaths`).
    public static func strippingServerFields(_ document: JSONValue, metadataPaths: [[String]] = []) -> JSONValue {
        var m = document.removing(["status"])
        for path in [["metadata"]] + metadataPaths where m.value(at: path) != nil {
            for field in serverSetMetadata { m = m.removing(path + [field]) }
            for annotation in serverSetAnnotations { m = m.removing(path + ["annotations", annotation]) }
            if m.value(at: path + ["annotations"])?.objectValue?.isEmpty == true {
                m = m.removing(path + ["annotations"])
            }
        }
        return m
    }

    /// One manifest per region grant (in that order) of a single-template workload: a copy without
    /// server-set fields, named `<name>-<region>` (or `generateName` `<prefix><region>-`)
    /// within DNS-1123 limits, holding the region's share of the replicas (and of a Job's
    /// completions), the region in the template labels (input's vocabulary), in the
    /// selector's `matchLabels` (so that each copy owns only its own pods) and in the
    /// `nodeSelector` as `topology.kubernetes.io/region`; with what was granted there: the
    /// GPU series label and the instance types in `eci-use-specs`. A GKE accelerator
    /// selector that names another series is removed.
    public static func regionManifests(_ translation: ManifestTranslation, grants: [RegionGrant]) -> [JSONValue] {
        let kind = translation.kind
        let total = grants.reduce(0) { $0 + $1.replicas }
        let completions = kind.completionsPath.flatMap { translation.manifest.value(at: $0)?.numberValue }.map { Int($0) }
        var completionsLeft = completions ?? 0
        return grants.enumerated().map { index, grant in
            var m = regionCopy(translation, region: grant.region)
            if let replicasPath = kind.replicasPath {
                m = m.setting(replicasPath, to: .number(Double(grant.replicas)))
            }
            if let completionsPath = kind.completionsPath, let completions, total > 0 {
                let share = index == grants.count - 1 ? completionsLeft : completions * grant.replicas / total
                completionsLeft -= share
                m = m.setting(completionsPath, to: .number(Double(max(share, 1))))
            }
            if let selectorPath = kind.selectorPath, m.value(at: selectorPath) != nil {
                m = m.setting(selectorPath + ["matchLabels", translation.vocabulary.regionLabel], to: .string(grant.region))
            }
            return granting(m, site: translation.components[0].site, grant: grant, vocabulary: translation.vocabulary)
        }
    }

    /// The one copy of a workload whose pod templates were placed together in one region:
    /// `grants[i]` is what its i-th component was granted there.
    public static func groupManifest(_ translation: ManifestTranslation, grants: [RegionGrant]) -> JSONValue {
        var m = regionCopy(translation, region: grants.first?.region ?? "")
        for (component, grant) in zip(translation.components, grants) {
            m = granting(m, site: component.site, grant: grant, vocabulary: translation.vocabulary)
        }
        for site in translation.idleSites {
            m = granting(m, site: site, grant: RegionGrant(region: grants.first?.region ?? "", replicas: 0),
                         vocabulary: translation.vocabulary)
        }
        return m
    }

    /// The document without server-set fields, named for the region.
    private static func regionCopy(_ translation: ManifestTranslation, region: String) -> JSONValue {
        let sites = translation.components.map(\.site.metadataPath)
        var m = strippingServerFields(translation.manifest, metadataPaths: sites)
        if let name = m["metadata"]?["name"]?.stringValue {
            m = m.setting(["metadata", "name"], to: .string(regionName(name, region: region)))
        } else if let prefix = m["metadata"]?["generateName"]?.stringValue {
            m = m.setting(["metadata", "generateName"], to: .string(regionPrefix(prefix, region: region)))
        }
        return m
    }

    /// One pod template with its region and what was granted there.
    private static func granting(_ document: JSONValue, site: TemplateSite, grant: RegionGrant, vocabulary: LabelVocabulary) -> JSONValue {
        var m = document
        let labels = site.metadataPath + ["labels"]
        // The unit's labels first: the region and series granted overwrite theirs.
        for (key, value) in grant.podLabels.sorted(by: { $0.key < $1.key }) { m = m.setting(labels + [key], to: .string(value)) }
        m = m.setting(labels + [vocabulary.regionLabel], to: .string(grant.region))
        let nodeSelector = site.specPath + ["nodeSelector"]
        m = m.setting(nodeSelector + [Labels.topologyRegion], to: .string(grant.region))
        if grant.gpuSeries.count == 1 {
            m = m.setting(labels + [vocabulary.seriesLabel], to: .string(grant.gpuSeries[0]))
        }
        m = replacingNodeConstraints(m, specPath: site.specPath, grant: grant)
        let specs = site.metadataPath + ["annotations", Labels.useSpecs]
        if !grant.instanceTypes.isEmpty, vocabulary == .alibabaCloud || m.value(at: specs) != nil {
            m = m.setting(specs, to: .string(grant.instanceTypes.prefix(maxInstanceTypes).joined(separator: ",")))
        }
        return m
    }

    /// `name-region`, the name shortened so that the whole stays a DNS-1123 subdomain.
    static func regionName(_ name: String, region: String) -> String {
        "\(dnsPrefix(name, room: maxNameLength - region.count - 1))-\(region)"
    }

    /// A `generateName` prefix with the region: `prefix` + `region-`, leaving the 5
    /// characters the API server appends.
    static func regionPrefix(_ prefix: String, region: String) -> String {
        let base = dnsPrefix(prefix, room: maxNameLength - 5 - region.count - 1)
        return base.isEmpty || base.hasSuffix("-") ? "\(base)\(region)-" : "\(base)-\(region)-"
    }

    /// At most `room` characters of DNS-1123: lower-case ASCII letters and digits, `-` in
    /// place of anything else (spaces, `_`), starting with a letter or digit and ending
    /// with one (or `-` when the input did, for prefixes that the caller extends).
    private static func dnsPrefix(_ name: String, room: Int) -> String {
        let mapped = String(name.lowercased().map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") ? $0 : "-" })
        var s = String(mapped.drop { !($0.isLetter || $0.isNumber) }.prefix(max(0, room)))
        let keepsDash = s.hasSuffix("-") && s.count == mapped.count
        while let last = s.last, !(last.isLetter || last.isNumber), !(keepsDash && last == "-") { s.removeLast() }
        return s
    }

    /// Regions in order of first appearance with their replicas, instance types and series
    /// (most used first): what `regionManifests` takes.
    public static func grants(instances: [(region: String, instanceType: String, gpuSeries: String?)]) -> [RegionGrant] {
        var order: [String] = []
        var counts: [String: (replicas: Int, types: [String: Int], series: [String: Int])] = [:]
        for instance in instances {
            if counts[instance.region] == nil {
                order.append(instance.region)
                counts[instance.region] = (0, [:], [:])
            }
            counts[instance.region]!.replicas += 1
            counts[instance.region]!.types[instance.instanceType, default: 0] += 1
            if let series = instance.gpuSeries { counts[instance.region]!.series[series, default: 0] += 1 }
        }
        func ranked(_ counts: [String: Int]) -> [String] {
            counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map(\.key)
        }
        return order.map { region in
            let c = counts[region]!
            return RegionGrant(region: region, replicas: c.replicas, instanceTypes: ranked(c.types), gpuSeries: ranked(c.series))
        }
    }
}

extension ManifestTranslator {
    /// The copy says what was granted: a model or instance-type selector the grant
    /// contradicts is removed from `nodeSelector`, an instance-type selector names the
    /// granted type (one type), and a required node affinity expression on such a key asks
    /// only that the label exists (emptying a term would make it match no node).
    static func replacingNodeConstraints(_ document: JSONValue, specPath: [String], grant: RegionGrant) -> JSONValue {
        var m = document
        let nodeSelector = specPath + ["nodeSelector"]
        for (key, value) in m.value(at: nodeSelector)?.objectValue ?? [:] {
            guard let spelling = AcceleratorSpellings.selector(key), let text = value.stringValue,
                !agrees(spelling, text, grant: grant)
            else { continue }
            if spelling.meaning == .instanceType && grant.instanceTypes.count == 1 {
                m = m.setting(nodeSelector + [key], to: .string(grant.instanceTypes[0]))
            } else {
                m = m.removing(nodeSelector + [key])
            }
        }
        let terms = specPath + ["affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms"]
        for (t, term) in (m.value(at: terms)?.arrayValue ?? []).enumerated() {
            for (e, expression) in (term["matchExpressions"]?.arrayValue ?? []).enumerated() {
                guard let key = expression["key"]?.stringValue, let spelling = AcceleratorSpellings.selector(key),
                    expression["operator"]?.stringValue == "In",
                    !(expression["values"]?.arrayValue ?? []).contains(where: { agrees(spelling, $0.stringValue ?? "", grant: grant) })
                else { continue }
                m = m.setting(terms + [String(t), "matchExpressions", String(e)], to: .object(["key": .string(key), "operator": .string("Exists")]))
            }
        }
        return m
    }

    /// Whether a node label value holds for every instance of the grant.
    private static func agrees(_ spelling: SelectorSpelling, _ value: String, grant: RegionGrant) -> Bool {
        switch spelling.meaning {
        case .model:
            return grant.gpuSeries.count == 1
                && AcceleratorModels.model(in: value, known: grant.gpuSeries)?.uppercased() == grant.gpuSeries[0].uppercased()
        case .family:
            return grant.gpuSeries.count == 1 && AcceleratorModels.model(named: grant.gpuSeries[0])?.family == value.lowercased()
        case .instanceFamily:
            return grant.gpuSeries.count == 1 && AcceleratorSpellings.instanceFamilies[value] == grant.gpuSeries[0]
        case .instanceType:
            return grant.instanceTypes == [value]
        case .vendor, .memoryMiB, .ignored:
            return true
        }
    }
}
