import Foundation

/// A region with its pools and their use now: what placement reads.
public struct RegionInventory: Sendable, Equatable {
    public var region: Region
    public var pools: [PoolUsage]

    public init(region: Region, pools: [PoolUsage]) {
        self.region = region
        self.pools = pools
    }
}

/// Replicas an allocation already holds in a region and unit: scale-out counts them
/// against the unit's `max`.
public struct HeldReplicas: Sendable, Equatable {
    public var region: String
    public var unit: Int?
    public var count: Int

    public init(region: String, unit: Int?, count: Int) {
        self.region = region
        self.unit = unit
        self.count = count
    }
}

public struct PlacementInput: Sendable {
    public var shape: ComputeShape
    /// New replicas to place now.
    public var replicas: Int
    /// Only this region, never a fallback.
    public var pinnedRegion: String?
    /// The request's placement, else the tenant's matching policy; nil = the default policy.
    public var policy: PlacementPolicy?
    public var allOrNothing: Bool
    public var held: [HeldReplicas]
    /// Every region, whatever its state.
    public var inventory: [RegionInventory]

    public init(
        shape: ComputeShape, replicas: Int, pinnedRegion: String? = nil, policy: PlacementPolicy? = nil,
        allOrNothing: Bool = true, held: [HeldReplicas] = [], inventory: [RegionInventory]
    ) {
        self.shape = shape
        self.replicas = replicas
        self.pinnedRegion = pinnedRegion
        self.policy = policy
        self.allOrNothing = allOrNothing
        self.held = held
        self.inventory = inventory
    }
}

public struct PlannedPlacement: Sendable, Equatable {
    public var region: String
    public var poolId: String
    public var count: Int
    public var unit: Int?

    public init(region: String, poolId: String, count: Int, unit: Int?) {
        self.region = region
        self.poolId = poolId
        self.count = count
        self.unit = unit
    }
}

public struct PlacementPlan: Sendable, Equatable {
    /// In placement order, counts above zero.
    public var placements: [PlannedPlacement]
    /// One per region considered, in the order considered.
    public var decisions: [PlacementDecision]
    public var placed: Int
    public var satisfied: Bool
}

/// Placement rules 1–5 of the design: which pools may take a replica, in which
/// order regions are tried, and how many replicas each gets. Pure and deterministic:
/// the same input always gives the same plan.
public enum PlacementPlanner {
    /// Rule 1: whether one instance of `pool` can hold one replica of `shape`.
    public static func fits(_ pool: Pool, _ shape: ComputeShape) -> Bool {
        guard pool.computeClass == shape.computeClass, pool.qos.contains(shape.qos),
            pool.cpu >= shape.cpu, pool.memoryGiB >= shape.memoryGiB
        else { return false }
        if let type = shape.instanceType, type != pool.instanceType { return false }
        if shape.computeClass == .gpu {
            guard let series = pool.gpuSeries, (pool.gpusPerInstance ?? 0) >= shape.gpuCount else { return false }
            if !shape.gpuSeries.isEmpty && !shape.gpuSeries.contains(series) { return false }
            if let required = shape.requiredGPUMemoryGiB,
                (pool.gpuMemoryGiB ?? 0) * Double(max(shape.gpuCount, 1)) < required
            {
                return false
            }
        }
        return true
    }

    /// The pools of an active region that fit, most preferred first: the client's
    /// series order, then price, then pool id. A cordoned region has none.
    public static func candidatePools(_ shape: ComputeShape, in region: RegionInventory) -> [PoolUsage] {
        guard region.region.state == .active else { return [] }
        func rank(_ usage: PoolUsage) -> Int {
            usage.pool.gpuSeries.flatMap { shape.gpuSeries.firstIndex(of: $0) } ?? 0
        }
        return region.pools.filter { fits($0.pool, shape) }.sorted {
            (rank($0), $0.pool.pricePerHour, $0.pool.id) < (rank($1), $1.pool.pricePerHour, $1.pool.id)
        }
    }

    /// Replicas of `shape` the region can take now: idle warm instances and new capacity.
    public static func replicasAvailable(_ shape: ComputeShape, in region: RegionInventory) -> Int {
        candidatePools(shape, in: region).reduce(0) { $0 + $1.grantable }
    }

    /// Rule 2's default policy: active regions, the primary first, then by the price
    /// of their cheapest pool with stock, then by replicas available, then id.
    public static func defaultRegionOrder(_ shape: ComputeShape, _ inventory: [RegionInventory]) -> [RegionInventory] {
        let keyed = inventory.filter { $0.region.state == .active }.map { region -> (RegionInventory, Double, Int) in
            let pools = candidatePools(shape, in: region)
            let stocked = pools.filter { $0.grantable > 0 }
            let price = (stocked.isEmpty ? pools : stocked).map(\.pool.pricePerHour).min() ?? .infinity
            return (region, price, pools.reduce(0) { $0 + $1.grantable })
        }
        return keyed.sorted { a, b in
            if a.0.region.primary != b.0.region.primary { return a.0.region.primary }
            if a.1 != b.1 { return a.1 < b.1 }
            if a.2 != b.2 { return a.2 > b.2 }
            return a.0.region.id < b.0.region.id
        }.map(\.0)
    }

    public static func plan(_ input: PlacementInput) -> PlacementPlan {
        var state = PlanState(input: input)
        let steps = steps(input)
        if input.policy?.strategy == .spread && input.pinnedRegion == nil {
            state.spread(steps)
        } else {
            state.prefer(steps)
        }
        return state.finish()
    }

    /// One unit resolved to regions, in the order they are tried.
    struct Step {
        var unit: Int?
        var max: Int?
        var regions: [RegionInventory]
        var unknown: [String]
    }

    /// Rules 2 and 3: the units to try. A region belongs to the first unit naming it
    /// or matching it; `*` means every region no earlier unit named explicitly.
    static func steps(_ input: PlacementInput) -> [Step] {
        let byId = Dictionary(input.inventory.map { ($0.region.id, $0) }, uniquingKeysWith: { first, _ in first })
        let ordered = defaultRegionOrder(input.shape, input.inventory)
            + input.inventory.filter { $0.region.state != .active }.sorted { $0.region.id < $1.region.id }
        if let pinned = input.pinnedRegion {
            return [Step(unit: nil, max: nil, regions: byId[pinned].map { [$0] } ?? [], unknown: byId[pinned] == nil ? [pinned] : [])]
        }
        guard let policy = input.policy, !policy.units.isEmpty else {
            return [Step(unit: nil, max: nil, regions: ordered, unknown: [])]
        }
        let named = policy.units.map { Set(($0.regions ?? []).filter { $0 != "*" }) }
        var claimed: Set<String> = []
        var result: [Step] = []
        for (index, unit) in policy.units.enumerated() {
            var regions: [RegionInventory] = []
            var unknown: [String] = []
            var seen: Set<String> = []
            func add(_ region: RegionInventory) {
                guard !claimed.contains(region.region.id), !seen.contains(region.region.id) else { return }
                if let selector = unit.selector, !matches(selector, region.region) { return }
                seen.insert(region.region.id)
                regions.append(region)
            }
            if let ids = unit.regions {
                for id in ids {
                    if id == "*" {
                        let earlier = named[..<index].reduce(into: Set<String>()) { $0.formUnion($1) }
                        ordered.filter { !earlier.contains($0.region.id) }.forEach(add)
                    } else if let region = byId[id] {
                        add(region)
                    } else {
                        unknown.append(id)
                    }
                }
            } else {
                ordered.forEach(add)
            }
            claimed.formUnion(seen)
            result.append(Step(unit: index, max: unit.max, regions: regions, unknown: unknown))
        }
        return result
    }

    static func matches(_ selector: RegionSelector, _ region: Region) -> Bool {
        if let kind = selector.kind, kind != region.kind { return false }
        return selector.labels.allSatisfy { region.labels[$0.key] == $0.value }
    }

    /// Human-readable summary of the requested shape for decisions.
    static func describe(_ shape: ComputeShape) -> String {
        var parts = ["class \(shape.computeClass.rawValue)"]
        if shape.computeClass == .gpu {
            if !shape.gpuSeries.isEmpty { parts.append("series [\(shape.gpuSeries.joined(separator: ", "))]") }
            if let memory = shape.requiredGPUMemoryGiB { parts.append("\(format(memory)) GiB GPU memory") }
            parts.append("\(shape.gpuCount) GPU")
        }
        parts.append("\(format(shape.cpu)) CPU")
        parts.append("\(format(shape.memoryGiB)) GiB")
        if shape.qos != .default { parts.append("qos \(shape.qos.rawValue)") }
        if let type = shape.instanceType { parts.append("type \(type)") }
        return parts.joined(separator: ", ")
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}

/// The mutable bookkeeping of one planning run.
struct PlanState {
    let input: PlacementInput
    var remaining: Int
    var left: [String: Int] = [:]  // grantable per "region/pool", consumed as the plan fills
    var placements: [PlannedPlacement] = []
    var decisions: [PlacementDecision] = []

    init(input: PlacementInput) {
        self.input = input
        remaining = input.replicas
        for region in input.inventory {
            for usage in region.pools { left[Self.key(region.region.id, usage.pool.id)] = usage.grantable }
        }
    }

    static func key(_ region: String, _ pool: String) -> String { region + "/" + pool }

    func held(unit: Int?) -> Int {
        input.held.filter { $0.unit == unit }.reduce(0) { $0 + $1.count }
    }

    /// Rule 3: units in order, each up to its max and what its regions give.
    mutating func prefer(_ steps: [PlacementPlanner.Step]) {
        for step in steps {
            noteUnknown(step)
            var room = step.max.map { max(0, $0 - held(unit: step.unit)) } ?? Int.max
            for region in step.regions {
                if remaining == 0 { return }
                if let skipped = skipReason(region) {
                    decide(region.region.id, 0, skipped)
                    continue
                }
                if room == 0 {
                    decide(region.region.id, 0, "unit \(step.unit ?? 0) max \(step.max ?? 0) reached")
                    continue
                }
                let taken = take(region, up: min(remaining, room), unit: step.unit)
                room -= taken.count
                decide(region.region.id, taken.count, taken.reason)
            }
        }
    }

    /// Rule 4: replicas in proportion to what each region can hold now (largest
    /// remainder, ties by region order), each capped at what it holds and each unit
    /// at its max. Held replicas are not redistributed: the new ones are spread.
    mutating func spread(_ steps: [PlacementPlanner.Step]) {
        var regions: [(region: RegionInventory, unit: Int?, capacity: Int)] = []
        for step in steps {
            noteUnknown(step)
            for region in step.regions {
                let capacity = skipReason(region) == nil ? PlacementPlanner.replicasAvailable(input.shape, in: region) : 0
                regions.append((region, step.unit, capacity))
            }
        }
        let total = regions.reduce(0) { $0 + $1.capacity }
        var shares = regions.map { _ in 0 }
        if total > 0 {
            let wanted = min(remaining, total)
            var remainders: [(index: Int, remainder: Int)] = []
            for (index, entry) in regions.enumerated() {
                let exact = wanted * entry.capacity
                shares[index] = exact / total
                remainders.append((index, exact % total))
            }
            var extra = wanted - shares.reduce(0, +)
            for entry in remainders.sorted(by: { ($1.remainder, $0.index) < ($0.remainder, $1.index) }) where extra > 0 {
                if shares[entry.index] < regions[entry.index].capacity {
                    shares[entry.index] += 1
                    extra -= 1
                }
            }
        }
        for step in steps {
            guard let max = step.max else { continue }
            var room = Swift.max(0, max - held(unit: step.unit))
            for index in regions.indices where regions[index].unit == step.unit {
                shares[index] = min(shares[index], room)
                room -= shares[index]
            }
        }
        for (index, entry) in regions.enumerated() {
            if let skipped = skipReason(entry.region) {
                decide(entry.region.region.id, 0, skipped)
                continue
            }
            let taken = take(entry.region, up: shares[index], unit: entry.unit)
            decide(entry.region.region.id, taken.count, "share \(shares[index]) of \(entry.capacity) available; " + taken.reason)
        }
    }

    func skipReason(_ region: RegionInventory) -> String? {
        if region.region.state != .active { return "cordoned" }
        if PlacementPlanner.candidatePools(input.shape, in: region).isEmpty {
            return "no pool matches \(PlacementPlanner.describe(input.shape))"
        }
        return nil
    }

    /// Fills a region's fitting pools in order, up to `limit` replicas.
    mutating func take(_ region: RegionInventory, up limit: Int, unit: Int?) -> (count: Int, reason: String) {
        var count = 0
        var notes: [String] = []
        for usage in PlacementPlanner.candidatePools(input.shape, in: region) {
            let key = Self.key(region.region.id, usage.pool.id)
            let available = left[key, default: 0]
            let n = min(available, limit - count)
            if n > 0 {
                placements.append(PlannedPlacement(region: region.region.id, poolId: usage.pool.id, count: n, unit: unit))
                left[key] = available - n
                count += n
            }
            let name = usage.pool.gpuSeries ?? usage.pool.instanceType
            notes.append("\(name): \(n) of \(available) available" + (usage.overcommitted ? " (overcommitted)" : ""))
            if count == limit { break }
        }
        remaining -= count
        if region.region.primary { notes.append("primary region") }
        return (count, notes.joined(separator: "; "))
    }

    mutating func noteUnknown(_ step: PlacementPlanner.Step) {
        for id in step.unknown { decide(id, 0, "unknown region") }
    }

    mutating func decide(_ region: String, _ replicas: Int, _ reason: String) {
        decisions.append(PlacementDecision(region: region, replicas: replicas, reason: reason))
    }

    func finish() -> PlacementPlan {
        let placed = input.replicas - remaining
        let satisfied = remaining == 0
        if !satisfied && input.allOrNothing {
            var decisions = self.decisions
            decisions.append(
                PlacementDecision(
                    region: "*", replicas: 0,
                    reason: "only \(placed) of \(input.replicas) replicas fit: nothing reserved (allOrNothing)"))
            return PlacementPlan(placements: [], decisions: decisions, placed: 0, satisfied: false)
        }
        return PlacementPlan(placements: placements, decisions: decisions, placed: placed, satisfied: satisfied)
    }
}
