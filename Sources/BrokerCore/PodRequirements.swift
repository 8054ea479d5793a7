import Foundation
import JSON

/// What one pod spec asks for: its effective CPU and memory, its GPUs in whichever spelling
/// it uses, and where its scheduling constraints pin it.
///
/// GPU spellings read (per container `resources.requests`, else `resources.limits`):
/// `nvidia.com/gpu` (whole GPUs), `amd.com/gpu` (whole AMD GPUs: only `MI…` series),
/// `aliyun.com/gpu-mem` (a share of one GPU, GiB), HAMi's `nvidia.com/gpumem` (MiB per GPU)
/// and `nvidia.com/gpucores` (a share: one GPU unless `nvidia.com/gpu` says more), and
/// `google.com/tpu` (refused: no pool offers TPUs). The node selector
/// `cloud.google.com/gke-accelerator` names a preferred series.
public struct PodRequirements: Sendable {
    public var cpu = 0.0
    public var memoryGiB = 0.0
    public var nvidiaGPUs = 0
    public var amdGPUs = 0
    public var tpus = 0
    /// GiB of GPU memory asked for as a share (`aliyun.com/gpu-mem`, total over containers).
    public var gpuShareGiB = 0.0
    /// MiB per GPU asked for through HAMi's `nvidia.com/gpumem`, the largest over containers.
    public var hamiMemoryMiB = 0.0
    public var hamiCores = 0.0
    public var accelerator: String?
    /// Regions the node selector and required node affinity allow, with the field that says so.
    public var regionPin: (regions: [String], path: String)?
    /// Where the containers' resources are, for messages.
    var resourcesPath = "spec.containers.resources"

    enum Resource {
        static let amd = "amd.com/gpu"
        static let aliyunShare = "aliyun.com/gpu-mem"
        static let hamiMemory = "nvidia.com/gpumem"
        static let hamiCores = "nvidia.com/gpucores"
        static let tpu = "google.com/tpu"
    }

    /// What the pod's GPU request comes to: how many, which series, how much memory.
    public struct GPU: Sendable, Equatable {
        public var count: Int
        public var series: [String]
        public var memoryGiB: Double?
        /// The spelling it was read from, for messages.
        public var source: String
    }

    /// The pod's GPU request, or nil after reporting one the broker cannot place.
    func gpu(catalog: InstanceCatalog, errors: FieldErrorCollector) -> GPU? {
        if tpus > 0 || accelerator?.hasPrefix("tpu") == true {
            errors.add(resourcesPath, "asks for \(Resource.tpu): no pool offers TPUs")
            return nil
        }
        if amdGPUs > 0 {
            guard !catalog.amdSeries.isEmpty else {
                errors.add(resourcesPath, "asks for \(Resource.amd): no pool offers AMD GPUs")
                return nil
            }
            return GPU(count: amdGPUs, series: catalog.amdSeries, memoryGiB: nil, source: Resource.amd)
        }
        if hamiMemoryMiB > 0 || hamiCores > 0 {
            let count = max(1, nvidiaGPUs)
            let memory = hamiMemoryMiB > 0 ? hamiMemoryMiB / 1024 * Double(count) : nil
            return GPU(count: count, series: [], memoryGiB: memory, source: Resource.hamiMemory)
        }
        if gpuShareGiB > 0 {
            return GPU(count: 1, series: [], memoryGiB: gpuShareGiB, source: Resource.aliyunShare)
        }
        return GPU(count: nvidiaGPUs, series: [], memoryGiB: nil, source: ManifestTranslator.Labels.gpuResource)
    }

    /// The series a GKE accelerator selector names (`nvidia-tesla-t4` → `T4`,
    /// `nvidia-h100-80gb` → `H100`), in the catalog's spelling when it has one.
    func acceleratorSeries(catalog: InstanceCatalog) -> String? {
        guard let accelerator else { return nil }
        var name = accelerator.lowercased()
        for prefix in ["nvidia-tesla-", "nvidia-"] where name.hasPrefix(prefix) {
            name.removeFirst(prefix.count)
            break
        }
        var parts = name.split(separator: "-").map(String.init)
        while let last = parts.last, parts.count > 1, last.hasSuffix("gb") || last == "mega" { parts.removeLast() }
        let series = parts.joined(separator: "-").uppercased()
        guard !series.isEmpty else { return nil }
        return catalog.gpuSeries.first { $0.uppercased() == series } ?? series
    }

    // MARK: reading

    static func read(_ podSpec: ObjectReader, errors: FieldErrorCollector) -> PodRequirements {
        var total = PodRequirements()
        if let containers = podSpec.array("containers", required: true, maxItems: 64) {
            for (path, container) in containers {
                total.add(readContainer(container, at: path, errors: errors))
            }
        }
        if let inits = podSpec.array("initContainers", allowEmpty: true, maxItems: 64) {
            for (path, container) in inits {
                total.atLeast(readContainer(container, at: path, errors: errors))
            }
        }
        let resourcesPath = FieldPath.child(podSpec.field("containers"), "resources")
        total.resourcesPath = resourcesPath
        if total.cpu > AllocationRequest.maxResource {
            errors.add(resourcesPath, "requests more than \(Int(AllocationRequest.maxResource)) CPUs in total")
        }
        if total.memoryGiB > AllocationRequest.maxResource {
            errors.add(resourcesPath, "requests more than \(Int(AllocationRequest.maxResource)) GiB of memory in total")
        }
        if max(total.nvidiaGPUs, total.amdGPUs) > AllocationRequest.maxGPUCount {
            errors.add(resourcesPath, "requests more than \(AllocationRequest.maxGPUCount) GPUs in total")
        }
        total.readScheduling(podSpec, errors: errors)
        return total
    }

    private mutating func add(_ other: PodRequirements) {
        cpu += other.cpu
        memoryGiB += other.memoryGiB
        nvidiaGPUs += other.nvidiaGPUs
        amdGPUs += other.amdGPUs
        tpus += other.tpus
        gpuShareGiB += other.gpuShareGiB
        hamiMemoryMiB = max(hamiMemoryMiB, other.hamiMemoryMiB)
        hamiCores = max(hamiCores, other.hamiCores)
    }

    /// Init containers run one at a time before the others: the pod needs the larger.
    private mutating func atLeast(_ other: PodRequirements) {
        cpu = max(cpu, other.cpu)
        memoryGiB = max(memoryGiB, other.memoryGiB)
        nvidiaGPUs = max(nvidiaGPUs, other.nvidiaGPUs)
        amdGPUs = max(amdGPUs, other.amdGPUs)
        tpus = max(tpus, other.tpus)
        gpuShareGiB = max(gpuShareGiB, other.gpuShareGiB)
    }

    private static func readContainer(_ value: JSONValue, at path: String, errors: FieldErrorCollector) -> PodRequirements {
        var result = PodRequirements()
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
        func number(_ name: String, memory: Bool = false) -> Double {
            guard let q = quantity(name) else { return 0 }
            do throws(QuantityError) {
                return memory ? try Quantity.memoryGiB(q.value) : try Quantity.cpu(q.value)
            } catch {
                errors.add(q.path, error.description)
                return 0
            }
        }
        func whole(_ name: String, what: String) -> Int {
            let n = number(name)
            if n != n.rounded() || n < 0 || n > Double(AllocationRequest.maxGPUCount) {
                errors.add(quantity(name)!.path, "must be a whole number of \(what) from 0 to \(AllocationRequest.maxGPUCount)")
                return 0
            }
            return Int(n)
        }
        result.cpu = number("cpu")
        result.memoryGiB = number("memory", memory: true)
        result.nvidiaGPUs = whole(ManifestTranslator.Labels.gpuResource, what: "GPUs")
        result.amdGPUs = whole(Resource.amd, what: "GPUs")
        result.tpus = whole(Resource.tpu, what: "TPUs")
        result.gpuShareGiB = number(Resource.aliyunShare)
        result.hamiMemoryMiB = number(Resource.hamiMemory)
        result.hamiCores = number(Resource.hamiCores)
        return result
    }

    /// Region pins and accelerator selectors: `nodeSelector`, and the required node
    /// affinity's terms (any term may match: the regions of every term are allowed).
    private mutating func readScheduling(_ podSpec: ObjectReader, errors: FieldErrorCollector) {
        let regionKeys = ManifestTranslator.Labels.regionKeys
        if let selector = podSpec.labels("nodeSelector") {
            accelerator = selector[ManifestTranslator.Labels.gkeAccelerator]
                ?? selector["cloud.google.com/gke-tpu-accelerator"].map { "tpu-\($0)" }
            let pinned = Set(regionKeys.compactMap { selector[$0] })
            if pinned.count > 1 {
                errors.add(podSpec.field("nodeSelector"), "pins several regions: \(pinned.sorted().joined(separator: ", "))")
            } else if let region = pinned.first {
                if Rules.isRegionId(region) {
                    regionPin = ([region], podSpec.field("nodeSelector"))
                } else {
                    errors.add(podSpec.field("nodeSelector"), "'\(region)' is not a region id matching \(Rules.regionIdPattern)")
                }
            }
        }
        let termsPath = ["affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms"]
        guard case .array(let terms)? = JSONValue.object(podSpec.members).value(at: termsPath) else { return }
        var allowed: [String] = []
        for term in terms {
            guard case .array(let expressions)? = term["matchExpressions"] else { continue }
            for expression in expressions {
                guard let key = expression["key"]?.stringValue, regionKeys.contains(key),
                    expression["operator"]?.stringValue == "In", case .array(let values)? = expression["values"]
                else { continue }
                for case .string(let value) in values where !allowed.contains(value) { allowed.append(value) }
            }
        }
        guard !allowed.isEmpty else { return }
        let path = FieldPath.join(podSpec.path, termsPath)
        if let pin = regionPin {
            let both = pin.regions.filter(allowed.contains)
            if both.isEmpty {
                errors.add(path, "allows \(allowed.joined(separator: ", ")) but nodeSelector pins \(pin.regions[0])")
            }
            return
        }
        if let bad = allowed.first(where: { !Rules.isRegionId($0) }) {
            errors.add(path, "'\(bad)' is not a region id matching \(Rules.regionIdPattern)")
            return
        }
        regionPin = (allowed, path)
    }
}
