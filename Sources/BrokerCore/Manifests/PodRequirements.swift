import Foundation
import JSON

/// What one pod spec asks for: its effective CPU and memory, the accelerators it names in
/// any spelling of `AcceleratorSpellings` (extended resources, DRA claims, KAI annotations,
/// node selectors), and where its scheduling constraints pin it. A spelling the table does
/// not know is reported by name: the pod would otherwise land on hardware that ignores it.
public struct PodRequirements: Sendable {
    public var cpu = 0.0
    public var memoryGiB = 0.0
    /// Accelerator resources by name: summed over containers (the largest of the init
    /// containers), per-device memory the largest.
    var resources: [String: Double] = [:]
    /// Device requests of the pod's DRA claims.
    var claims: [DeviceClaims.Request] = []
    /// Node selectors the table knows, with their values (any of them allowed).
    var selectors: [(spelling: SelectorSpelling, values: [String])] = []
    /// Regions the node selector and required node affinity allow, with the field that says so.
    public var regionPin: (regions: [String], path: String)?
    /// Where the containers' resources are, for messages.
    var resourcesPath = "spec.containers.resources"

    /// What the pod's accelerator request comes to.
    public struct GPU: Sendable, Equatable {
        public var count: Int
        public var vendor: AcceleratorVendor?
        /// Acceptable models (empty: any of the vendor's).
        public var series: [String]
        /// Models node selectors prefer, tried first.
        public var preferred: [String] = []
        /// Instance types node selectors name that the inventory has, tried first.
        public var instanceTypes: [String] = []
        public var minMemoryGiB: Double?
        public var partition: String?
        public var interconnect: String?
        /// The spelling it was read from, for messages.
        public var source: String
    }

    // MARK: reading

    static func read(
        _ podSpec: ObjectReader, annotations: [String: String] = [:], claims: DeviceClaims = .init(),
        errors: FieldErrorCollector
    ) -> PodRequirements {
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
        total.claims = claims.requests(podSpec, errors: errors)
        for spelling in AcceleratorSpellings.annotations {
            guard let text = annotations[spelling.key] else { continue }
            guard let value = Double(text), value > 0, value.isFinite else {
                errors.add(resourcesPath, "annotation \(spelling.key) must be a positive number, not '\(text)'")
                continue
            }
            total.claims.append(.init(name: spelling.key, vendor: spelling.vendor, count: spelling.count, amount: value))
        }
        total.readScheduling(podSpec, errors: errors)
        return total
    }

    private mutating func add(_ other: PodRequirements) {
        cpu += other.cpu
        memoryGiB += other.memoryGiB
        for (name, amount) in other.resources {
            resources[name] = Self.perDevice(name) ? max(resources[name] ?? 0, amount) : (resources[name] ?? 0) + amount
        }
    }

    /// Init containers run one at a time before the others: the pod needs the larger.
    private mutating func atLeast(_ other: PodRequirements) {
        cpu = max(cpu, other.cpu)
        memoryGiB = max(memoryGiB, other.memoryGiB)
        resources.merge(other.resources) { max($0, $1) }
    }

    private static func perDevice(_ name: String) -> Bool {
        let count = AcceleratorSpellings.resource(name)?.count
        return count == .memoryMiBPerDevice || count == .percent
    }

    private static func readContainer(_ value: JSONValue, at path: String, errors: FieldErrorCollector) -> PodRequirements {
        var result = PodRequirements()
        guard let container = errors.object(value, at: path), let resources = container.object("resources") else {
            return result
        }
        let requests = resources.object("requests")
        let limits = resources.object("limits")
        // requests[name], else limits[name]: every name either lists.
        var names: [String] = []
        for reader in [requests, limits].compactMap({ $0 }) {
            for name in reader.members.keys.sorted() where !names.contains(name) { names.append(name) }
        }
        for name in names {
            guard let reader = [requests, limits].compactMap({ $0 }).first(where: { $0.value(name) != nil }),
                let value = reader.value(name)
            else { continue }
            let at = reader.field(name)
            let spelling = AcceleratorSpellings.resource(name)
            if spelling == nil && !AcceleratorSpellings.isNative(name) {
                errors.add(at, "asks for \(name), an extended resource the broker does not know: it cannot tell which "
                    + "hardware provides it, and will not place the pod where it would be ignored")
                continue
            }
            guard name == "cpu" || name == "memory" || spelling != nil else { continue }
            do throws(QuantityError) {
                let amount = name == "memory" ? try Quantity.memoryGiB(value) : try Quantity.cpu(value)
                switch name {
                case "cpu": result.cpu = amount
                case "memory": result.memoryGiB = amount
                default:
                    if spelling?.count == .devices, amount != amount.rounded() || amount < 0 {
                        errors.add(at, "must be a whole number of devices")
                    } else if amount > 0 {
                        result.resources[name] = amount
                    }
                }
            } catch {
                errors.add(at, error.description)
            }
        }
        return result
    }

    /// Region pins and accelerator selectors: `nodeSelector`, and the required node
    /// affinity's terms (any term may match: the regions of every term are allowed).
    private mutating func readScheduling(_ podSpec: ObjectReader, errors: FieldErrorCollector) {
        let regionKeys = ManifestTranslator.Labels.regionKeys
        if let selector = podSpec.labels("nodeSelector") {
            for key in selector.keys.sorted() {
                noteSelector(key, [selector[key]!], at: FieldPath.child(podSpec.field("nodeSelector"), key), errors: errors)
            }
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
                if let key = expression["key"]?.stringValue, !regionKeys.contains(key),
                    expression["operator"]?.stringValue == "In", case .array(let values)? = expression["values"]
                {
                    noteSelector(key, values.compactMap(\.stringValue), at: FieldPath.join(podSpec.path, termsPath), errors: errors)
                }
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

    /// A node label the pod requires: kept when the table knows it, refused when it speaks
    /// of accelerators in words the table does not know, passed over otherwise.
    private mutating func noteSelector(_ key: String, _ values: [String], at path: String, errors: FieldErrorCollector) {
        if let spelling = AcceleratorSpellings.selector(key) {
            if spelling.meaning != .ignored, !values.isEmpty { selectors.append((spelling, values)) }
        } else if AcceleratorSpellings.looksLikeAcceleratorKey(key) {
            errors.add(path, "selects nodes by \(key), a label the broker does not know: it cannot tell which "
                + "accelerator that means, and will not place the pod where the label would be ignored")
        }
    }
}
