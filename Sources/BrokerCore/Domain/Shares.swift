import Foundation

/// What a tenant is entitled to of one resource when capacity is scarce (issue 28).
/// Amounts are in the resource's unit: GPUs, vCPUs or GiB.
public struct ResourceShare: Codable, Sendable, Equatable {
    /// Held within this amount, capacity is the tenant's: never reclaimed, and a tenant
    /// under it is admitted before tenants over theirs.
    public var guaranteed: Double
    /// Divides the tenant's borrowed fraction: weight 2 may borrow twice as much as
    /// weight 1 before it sorts behind.
    public var weight: Double
    /// At most this much above the guarantee; nil: no limit.
    public var borrowingLimit: Double?
    /// At most this much of the unused guarantee lent to the cohort; nil: all of it.
    public var lendingLimit: Double?

    public init(guaranteed: Double = 0, weight: Double = 1, borrowingLimit: Double? = nil, lendingLimit: Double? = nil) {
        self.guaranteed = guaranteed
        self.weight = weight
        self.borrowingLimit = borrowingLimit
        self.lendingLimit = lendingLimit
    }

    enum CodingKeys: String, CodingKey {
        case guaranteed, weight, borrowingLimit, lendingLimit
    }

    /// Limits are written as null rather than left out: null means "no limit".
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(guaranteed, forKey: .guaranteed)
        try c.encode(weight, forKey: .weight)
        try c.encode(borrowingLimit, forKey: .borrowingLimit)
        try c.encode(lendingLimit, forKey: .lendingLimit)
    }

    /// A resource nobody set: nothing guaranteed, weight 1.
    public static let unset = ResourceShare()
}

/// A tenant's shares: its cohort (tenants that lend each other unused guarantees) and
/// a share per resource key (`ShareResource`).
public struct TenantShare: Codable, Sendable, Equatable {
    public var cohort: String?
    public var resources: [String: ResourceShare]

    public init(cohort: String? = nil, resources: [String: ResourceShare] = [:]) {
        self.cohort = cohort
        self.resources = resources
    }

    enum CodingKeys: String, CodingKey {
        case cohort, resources
    }

    /// No cohort is written as null.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(cohort, forKey: .cohort)
        try c.encode(resources, forKey: .resources)
    }

    public func share(of resource: String) -> ResourceShare { resources[resource] ?? .unset }
}

/// The resources a share may name: `gpus` (any model), `gpu:<model>` (one accelerator
/// model, as pools spell `gpuSeries`), `cpu` and `memoryGiB` (CPU classes).
public enum ShareResource {
    public static let gpus = SharedResourceKind.gpus.rawValue
    public static let modelPrefix = "gpu:"

    public static func model(_ series: String) -> String { modelPrefix + series }

    public static func isValid(_ key: String) -> Bool {
        if SharedResourceKind(rawValue: key) != nil { return true }
        guard key.hasPrefix(modelPrefix) else { return false }
        let model = key.utf8.dropFirst(modelPrefix.utf8.count)
        return (1...64).contains(model.count) && model.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x5F || b == 0x2D
        }
    }

    /// What instances of one shape use of each resource: their GPUs twice (of any model,
    /// and of their model) or, on a CPU class, their vCPUs and memory.
    public static func use(gpuSeries: String?, gpus count: Double, cpu: Double, memoryGiB: Double) -> [String: Double] {
        if let gpuSeries, count > 0 {
            return [gpus: count, model(gpuSeries): count]
        }
        return [SharedResourceKind.cpu.rawValue: cpu, SharedResourceKind.memoryGiB.rawValue: memoryGiB]
    }

    /// The unit a person reads an amount in.
    public static func unit(_ key: String) -> String {
        switch SharedResourceKind(rawValue: key) {
        case .cpu: "vCPU"
        case .memoryGiB: "GiB"
        case .gpus, nil: "GPU"
        }
    }
}

extension Dictionary where Key == String, Value == Double {
    /// Adds `other`'s amounts to these, key by key, `times` over.
    public mutating func add(_ other: [String: Double], times: Double = 1) {
        for (key, amount) in other { self[key, default: 0] += amount * times }
    }
}
