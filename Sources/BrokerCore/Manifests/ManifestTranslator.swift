import Foundation
import JSON

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

    /// The pod label that names the granted GPU series (the seeds' words unless CTyun's).
    public var seriesLabel: String {
        self == .ctyun ? ManifestTranslator.Labels.ctyunSeries : ManifestTranslator.Labels.alibabaSeries
    }
}

/// Where one pod template's parts are in a document, and how many pods it stands for.
public struct TemplateSite: Sendable, Equatable {
    /// The component's name in the kind's words (`leader`, `worker`, `head`, `Worker`...).
    public var name: String
    /// The object holding the template's `labels` and `annotations`.
    public var metadataPath: [String]
    /// The pod spec (`containers`, `nodeSelector`, `affinity`).
    public var specPath: [String]
    public var replicas: Int
    /// KServe components name their container under a framework key (`model`, `tensorflow`...).
    public var frameworkContainers = false

    public init(name: String, metadataPath: [String], specPath: [String], replicas: Int, frameworkContainers: Bool = false) {
        self.name = name
        self.metadataPath = metadataPath
        self.specPath = specPath
        self.replicas = replicas
        self.frameworkContainers = frameworkContainers
    }
}

/// One workload document understood as allocation requests.
public struct ManifestTranslation: Sendable, Equatable {
    public struct Component: Sendable, Equatable {
        public var site: TemplateSite
        /// What to ask for, in order; the first that can be satisfied wins: one request per
        /// instance type of `k8s.aliyun.com/eci-use-specs`, or the series a GKE accelerator
        /// selector prefers and then any series, else exactly one request.
        public var requests: [AllocationRequest]
    }

    public var kind: WorkloadKind
    public var vocabulary: LabelVocabulary
    /// The document as sent, rewritten per region by `ManifestTranslator.regionManifests`.
    public var manifest: JSONValue
    /// One per pod template.
    public var components: [Component]
    /// Whether the components must be placed together in one region, all or none.
    public var together = false
    /// Templates of a group with no pods now (a worker group scaled to 0): they get the
    /// region of the others, for when they scale up.
    public var idleSites: [TemplateSite] = []
    /// The policy object whose placement this workload took, if any.
    public var governedBy: GoverningPolicy?
    /// Per placement unit, labels a governing policy puts on the pods that unit places.
    public var unitPodLabels: [[String: String]] = []

    /// The requests of a single-template workload.
    public var requests: [AllocationRequest] { components[0].requests }

    /// Nothing to place (`replicas: 0`): answered with its copy and nothing reserved.
    public var isEmpty: Bool { components.allSatisfy { $0.requests[0].replicas == 0 } }
}

/// Instance types the inventory offers, for reading `eci-use-specs` and GPU vendors: built
/// by the API from the pools of every region, a plain value here.
public struct InstanceCatalog: Sendable, Equatable {
    public var poolsByType: [String: [Pool]]
    public var gpuSeries: [String]
    /// Vendors some pool's accelerator comes from.
    public var vendors: Set<AcceleratorVendor>
    /// Device claims and claim templates of the manifest file (DRA).
    public var claims = DeviceClaims()

    public init(pools: [Pool]) {
        poolsByType = Dictionary(grouping: pools, by: \.instanceType)
        gpuSeries = Array(Set(pools.compactMap(\.gpuSeries))).sorted()
        vendors = Set(pools.compactMap(\.gpuVendor))
    }

    public static let empty = InstanceCatalog(pools: [])

    /// No inventory to judge by (a translation without a broker): every vendor may be offered.
    public var isEmpty: Bool { poolsByType.isEmpty }

    /// Whether some pool has this vendor's accelerators (assumed without an inventory).
    public func offers(_ vendor: AcceleratorVendor) -> Bool { isEmpty || vendors.contains(vendor) }
}

/// Kubernetes workload documents in, allocation requests and label-injected documents out.
/// Pure: the API turns YAML into `JSONValue`s and the inventory into an `InstanceCatalog`.
///
/// Read from the pod template (where `ManifestKinds` says it is):
/// - labels `alibabacloud.com/{compute-class,compute-qos,gpu-model-series,serverless-region-id}`
///   and `ctyun.cn/{compute-class,compute-qos,gpu-model-series,specified-region-id}` in the
///   broker's own words (`general-purpose`, `performance`, `gpu`, and ACS's `gpu-hpn` read as
///   `gpu`; `default`, `best-effort`); every label also becomes a request label, so a tenant's
///   named policy selects the workload the way a ResourcePolicy selects pods;
/// - region pins in `nodeSelector` and required node affinity (`PodRequirements`);
/// - the annotation `k8s.aliyun.com/eci-use-specs`: up to 5 instance types, tried in order;
///   a GPU type known to the catalog asks for its series and GPUs;
/// - accelerators in every spelling of `AcceleratorSpellings` (resources, DRA claims, KAI
///   annotations, model and instance-type node labels): vendor, devices, memory, partition,
///   link; an unknown spelling is refused by name (`PodRequirements`, `PodAccelerator`);
/// - the replica count where the kind keeps it (default 1).
/// QoS defaults to `default`. A pod that requests no CPU (or no memory) is sized at
/// `defaultCPU` cores (`defaultMemoryGiB` GiB), the smallest serverless shape.
public enum ManifestTranslator {
    public static let defaultCPU = 0.25
    public static let defaultMemoryGiB = 0.5
    /// Longest `metadata.name` Kubernetes allows; the per-region suffix must fit.
    public static let maxNameLength = 253
    /// Most instance types ECI accepts in `eci-use-specs`: each is a placement attempt.
    public static let maxInstanceTypes = 5

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
        public static let regionKeys = [alibabaRegion, ctyunRegion, topologyRegion]
    }

    /// ACS class values read as one of the broker's classes.
    static let classAliases: [String: ComputeClass] = ["gpu-hpn": .gpu]

    // MARK: manifest → requests

    /// One workload document (its kind already looked up in `ManifestKinds`).
    public static func translate(
        _ manifest: JSONValue, kind: WorkloadKind, catalog: InstanceCatalog = .empty, path: String = ""
    ) throws(ValidationFailure) -> ManifestTranslation {
        let errors = FieldErrorCollector()
        guard let root = errors.object(manifest, at: path) else { throw ValidationFailure(errors: errors.errors) }
        checkName(root, errors: errors)

        var replicas = 1
        if let replicasPath = kind.replicasPath, let value = manifest.value(at: replicasPath), value != .null {
            let at = FieldPath.join(path, replicasPath)
            replicas = ObjectReader.checkInteger(
                value, at: at, errors: errors, coerceStrings: false, in: 0...AllocationRequest.maxReplicas) ?? 1
        }
        // A Job runs no more pods at once than it needs completions.
        if let completionsPath = kind.completionsPath, let completions = manifest.value(at: completionsPath)?.numberValue,
            completions >= 1, completions < Double(replicas)
        {
            replicas = Int(completions)
        }
        let site = TemplateSite(
            name: kind.kind, metadataPath: kind.templatePath + ["metadata"], specPath: kind.templatePath + ["spec"],
            replicas: replicas)
        let templatePath = FieldPath.join(path, kind.templatePath)
        let templateValue = kind.templatePath.isEmpty ? manifest : manifest.value(at: kind.templatePath)
        guard let templateValue, errors.object(templateValue, at: templatePath) != nil else {
            if templateValue == nil { errors.add(templatePath, "is required: the pod template") }
            throw ValidationFailure(errors: errors.errors)
        }
        let (vocabulary, requests) = try readTemplate(manifest, site: site, path: path, catalog: catalog, errors: errors)
        return ManifestTranslation(
            kind: kind, vocabulary: vocabulary, manifest: manifest, components: [.init(site: site, requests: requests)])
    }

    /// `metadata.name`, or `generateName`, is required.
    static func checkName(_ root: ObjectReader, errors: FieldErrorCollector) {
        if let metadata = root.object("metadata", required: true) {
            let name = metadata.string("name", maxLength: maxNameLength)
            let generated = metadata.string("generateName", maxLength: maxNameLength)
            if name == nil && generated == nil && errors.isEmpty {
                errors.add(metadata.field("name"), "is required (or metadata.generateName)")
            }
        }
    }

    /// One pod template's requests, and the vocabulary its labels speak.
    static func readTemplate(
        _ manifest: JSONValue, site: TemplateSite, path: String, catalog: InstanceCatalog, errors: FieldErrorCollector
    ) throws(ValidationFailure) -> (LabelVocabulary, [AllocationRequest]) {
        let replicas = site.replicas
        let metadataPath = FieldPath.join(path, site.metadataPath)
        let specPath = FieldPath.join(path, site.specPath)
        let templateMetadata = manifest.value(at: site.metadataPath).flatMap { errors.object($0, at: metadataPath) }
        var specValue = manifest.value(at: site.specPath)
        if site.frameworkContainers, let spec = specValue { specValue = frameworkPodSpec(spec) }
        let podSpec: ObjectReader?
        if let specValue {
            podSpec = errors.object(specValue, at: specPath)
        } else {
            errors.add(specPath, "is required: the pod spec")
            podSpec = nil
        }
        let labels = templateMetadata?.labels("labels") ?? [:]
        let labelsPath = FieldPath.child(metadataPath, "labels")
        let annotations = templateMetadata.flatMap { readAnnotations($0) } ?? [:]
        let annotationsPath = FieldPath.child(metadataPath, "annotations")
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

        let pod = podSpec.map { PodRequirements.read($0, annotations: annotations, claims: catalog.claims, errors: errors) }

        var computeClass: ComputeClass?
        let classLabel = label([Labels.alibabaClass, Labels.ctyunClass])
        if let given = classLabel {
            let value = given.value.trimmingCharacters(in: .whitespaces).lowercased()
            computeClass = classAliases[value]
                ?? vocabularyValue(value, ComputeClass.self, at: FieldPath.child(labelsPath, given.key), errors)
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

        // Region: a label pin and the scheduling pins must agree.
        var region: String?
        if let given = label(Labels.regionKeys) {
            if Rules.isRegionId(given.value) {
                region = given.value
            } else {
                errors.add(FieldPath.child(labelsPath, given.key), "must be a region id matching \(Rules.regionIdPattern)")
            }
        }
        var placement: PlacementPolicy?
        if let pin = pod?.regionPin {
            if let region, !pin.regions.contains(region) {
                errors.add(pin.path, "pins \(pin.regions.joined(separator: ", ")) but the pod's labels pin \(region)")
            } else if region == nil, pin.regions.count == 1 {
                region = pin.regions[0]
            } else if region == nil {
                placement = PlacementPolicy(strategy: .prefer, units: [PlacementUnit(regions: pin.regions)])
            }
        }

        // Instance types to try, in order.
        var instanceTypes: [String] = []
        if let specs = annotations[Labels.useSpecs] {
            let path = FieldPath.child(annotationsPath, Labels.useSpecs)
            for part in specs.split(separator: ",", omittingEmptySubsequences: false) {
                let type = part.trimmingCharacters(in: .whitespaces)
                if type.isEmpty || type.count > 128 {
                    errors.add(path, "must list instance types of 1 to 128 characters, separated by commas")
                    instanceTypes = []
                    break
                }
                if !instanceTypes.contains(type) { instanceTypes.append(type) }
            }
            if instanceTypes.count > maxInstanceTypes {
                errors.add(path, "lists \(instanceTypes.count) instance types; at most \(maxInstanceTypes) are allowed")
                instanceTypes = []
            }
        }

        let gpu = pod?.gpu(catalog: catalog, errors: errors)
        guard errors.isEmpty, let qos, let pod else {
            if errors.isEmpty { errors.add(path, "is not a workload the broker can read") }
            throw ValidationFailure(errors: errors.errors)
        }

        // The class: the label's, else GPU when any spelling (a series label too) asks for one.
        // A workload that asks for an accelerator never goes to another class.
        let wantsGPU = gpu != nil || computeClass == .gpu || !gpuSeries.isEmpty
        if let given = classLabel, let computeClass, computeClass != .gpu, let gpu {
            errors.add(FieldPath.child(labelsPath, given.key), "is \(computeClass.rawValue) but the pod requests GPUs (\(gpu.source))")
            throw ValidationFailure(errors: errors.errors)
        }
        let baseClass = computeClass ?? (wantsGPU ? .gpu : .generalPurpose)
        let base = ComputeShape(
            computeClass: baseClass, qos: qos, gpuSeries: gpuSeries.isEmpty ? gpu?.series ?? [] : gpuSeries,
            gpuCount: baseClass == .gpu ? gpu?.count ?? 1 : 0, gpuVendor: gpu?.vendor,
            minGPUMemoryGiB: gpu?.minMemoryGiB, gpuInterconnect: gpu?.interconnect, gpuPartition: gpu?.partition,
            cpu: pod.cpu > 0 ? pod.cpu : defaultCPU,
            memoryGiB: pod.memoryGiB > 0 ? pod.memoryGiB : defaultMemoryGiB)

        var shapes: [ComputeShape] = []
        let types = instanceTypes.isEmpty ? gpu?.instanceTypes ?? [] : instanceTypes
        if !types.isEmpty {
            shapes = types.map { type in instanceShape(base, type: type, catalog: catalog, explicitClass: computeClass) }
            if instanceTypes.isEmpty { shapes.append(base) }
        } else if let preferred = gpu?.preferred, !preferred.isEmpty, gpuSeries.isEmpty, baseClass == .gpu {
            var first = base
            first.gpuSeries = base.gpuSeries.isEmpty ? preferred : preferred.filter(base.gpuSeries.contains)
            shapes = first.gpuSeries.isEmpty ? [base] : [first, base]
        } else {
            shapes = [base]
        }
        let requests = shapes.map { shape in
            AllocationRequest(shape: shape, replicas: replicas, region: region, placement: placement, labels: labels)
        }
        return (vocabulary, requests)
    }

    /// A KServe component as a pod spec: its `containers`, else one container per framework
    /// key (an object with `storageUri`, `resources`, `image` or `modelFormat`).
    static func frameworkPodSpec(_ component: JSONValue) -> JSONValue {
        guard var members = component.objectValue, members["containers"] == nil else { return component }
        let frameworks = members.keys.sorted().filter { key in
            guard let member = members[key]?.objectValue else { return false }
            return ["storageUri", "resources", "image", "modelFormat"].contains { member[$0] != nil }
        }
        members["containers"] = .array(frameworks.map { key in
            .object(members[key]!.objectValue!.merging(["name": .string(key)]) { old, _ in old })
        })
        for key in frameworks { members[key] = nil }
        return .object(members)
    }

    /// The base shape limited to one instance type; a GPU type the catalog knows sets the
    /// class, series and GPU count its pools have (a pod may ask for fewer GPUs).
    static func instanceShape(
        _ base: ComputeShape, type: String, catalog: InstanceCatalog, explicitClass: ComputeClass?
    ) -> ComputeShape {
        var shape = base
        shape.instanceType = type
        guard let pool = catalog.poolsByType[type]?.first else { return shape }
        // A pod that asks for an accelerator stays in the GPU class: a CPU type cannot serve it.
        let asksAccelerator = base.computeClass == .gpu && explicitClass == nil
        if (explicitClass == nil || explicitClass == pool.computeClass) && !asksAccelerator {
            shape.computeClass = pool.computeClass
        }
        if shape.computeClass == .gpu {
            if base.computeClass != .gpu || base.gpuCount == 0 { shape.gpuCount = pool.gpusPerInstance ?? 1 }
            if shape.gpuSeries.isEmpty, let series = pool.gpuSeries { shape.gpuSeries = [series] }
        } else {
            shape.gpuCount = 0
            shape.gpuSeries = []
        }
        return shape
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
}
