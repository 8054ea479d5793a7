import Foundation

// The placement planner: pure functions from (request shape, policy, inventory) to a plan.
// No I/O; the store turns a plan into reservations under its own locks.

/// One region with its pools and their current use.
public struct RegionInventory: Sendable, Equatable {
    public var region: Region
    public var pools: [PoolUsage]

    public init(region: Region, pools: [PoolUsage]) {
        self.region = region
        self.pools = pools
    }
}

/// Replicas an allocation already holds, for scale-out (unit max counts them) and for spreading.
public struct HeldReplicas: Sendable, Equatable {
    public var region: String
    public var unit: Int?
    public var count: Int

    public init(region: String, unit: Int? = nil, count: Int) {
        self.region = region
        self.unit = unit
        self.count = count
    }
}

public struct PlacementInput: Sendable {
    public var shape: ComputeShape
    /// How many NEW replicas to place now.
    public var replicas: Int
    /// `request.region`: only this region, never a fallback. Overrides `policy`.
    public var pinnedRegion: String?
    /// `request.placement`, else the tenant's matching named policy, else nil = default policy.
    public var policy: PlacementPolicy?
    public var allOrNothing: Bool
    /// `[]` for a new allocation.
    public var held: [HeldReplicas]
    /// Every region (any state) with its pools and usage.
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
    /// The policy unit (0-based) that placed these; nil for the default policy or a pinned region.
    public var unit: Int?

    public init(region: String, poolId: String, count: Int, unit: Int? = nil) {
        self.region = region
        self.poolId = poolId
        self.count = count
        self.unit = unit
    }
}

public struct PlacementPlan: Sendable, Equatable {
    /// In placement order; counts > 0.
    public var placements: [PlannedPlacement]
    /// One per region considered, in the order considered.
    public var decisions: [PlacementDecision]
    public var placed: Int
    /// `placed == replicas` (a non-positive request is trivially satisfied with nothing placed).
    public var satisfied: Bool

    public init(placements: [PlannedPlacement], decisions: [PlacementDecision], placed: Int, satisfied: Bool) {
        self.placements = placements
        self.decisions = decisions
        self.placed = placed
        self.satisfied = satisfied
    }
}

public enum PlacementPlanner {
    // MARK: Rule 1: candidate pools

    /// Rule 1: the pools of an active region that fit `shape`, in the order they are used:
    /// the client's series order first, then price, then pool id. A cordoned region has none.
    public static func candidatePools(_ shape: ComputeShape, in region: RegionInventory) -> [PoolUsage] {
        guard region.region.state == .active else { return [] }
        return sortedCandidates(shape, region).map { region.pools[$0] }
    }

    /// Sum of `grantable` over the candidate pools: replicas the region can give now.
    public static func replicasAvailable(_ shape: ComputeShape, in region: RegionInventory) -> Int {
        RegionStat(shape, region.region.state, region.pools).available
    }

    /// Active regions in the default order: primary first, then by the price of the cheapest
    /// candidate pool that can give something now (regions that can give nothing come after all
    /// that can), then by available replicas (most first), then by id.
    public static func defaultRegionOrder(_ shape: ComputeShape, _ inventory: [RegionInventory]) -> [RegionInventory] {
        defaultOrder(inventory, among: Array(inventory.indices)) {
            RegionStat(shape, inventory[$0].region.state, inventory[$0].pools)
        }.map { inventory[$0] }
    }

    /// Does `pool` fit `shape` (rule 1, region state aside)?
    public static func poolFits(_ pool: Pool, _ shape: ComputeShape) -> Bool {
        withUnsafePointer(to: PoolUsage(pool: pool, allocated: 0, idle: 0)) {
            fits(UnsafeBufferPointer(start: $0, count: 1), 0, shape)
        }
    }

    // MARK: Planning

    /// Plans `input.replicas` new replicas. Rules 1–7; see the design's "Placement rules".
    public static func plan(_ input: PlacementInput) -> PlacementPlan {
        var planner = Planner(input)
        planner.run()
        return planner.finish()
    }

    // MARK: Internals shared by the public functions

    /// Per-region facts for one shape, computed at most once per plan without allocating: the
    /// default order needs them for every region it ranks, the sorted pool list only for regions
    /// actually used.
    struct RegionStat {
        var active: Bool
        var matching: Int
        var available: Int
        var capacity: Int
        /// Cheapest candidate pool with grantable > 0; +inf when none.
        var bestPrice: Double

        /// A region's state and pools, passed apart: passing the `RegionInventory` would copy
        /// it, a dozen reference-count operations.
        init(_ shape: borrowing ComputeShape, _ state: RegionState, _ pools: borrowing [PoolUsage]) {
            active = state == .active
            matching = 0
            available = 0
            capacity = 0
            bestPrice = .infinity
            guard active else { return }
            // Read the pools in place: copying a `PoolUsage` costs a dozen reference-count operations.
            var matching = 0, available = 0, capacity = 0, bestPrice = Double.infinity
            pools.withUnsafeBufferPointer { pools in
                for i in 0..<pools.count where PlacementPlanner.fits(pools, i, shape) {
                    let cap = pools[i].pool.capacity
                    let grantable = max(0, cap - pools[i].allocated) + pools[i].idle
                    matching += 1
                    available += grantable
                    capacity += max(0, cap)
                    let price = pools[i].pool.pricePerHour
                    if grantable > 0, price < bestPrice { bestPrice = price }
                }
            }
            self.matching = matching
            self.available = available
            self.capacity = capacity
            self.bestPrice = bestPrice
        }
    }

    /// Rule 1's pools of a region (state aside) as indices into `region.pools`, in use order:
    /// the client's series order, then price, then pool id.
    static func sortedCandidates(_ shape: ComputeShape, _ region: RegionInventory) -> [Int] {
        var keyed: [(series: Int, price: Double, index: Int)] = []
        region.pools.withUnsafeBufferPointer { pools in
            for i in 0..<pools.count where PlacementPlanner.fits(pools, i, shape) {
                var seriesRank = 0
                if !shape.gpuSeries.isEmpty, let series = pools[i].pool.gpuSeries {
                    seriesRank = shape.gpuSeries.firstIndex(of: series) ?? Int.max
                }
                keyed.append((seriesRank, pools[i].pool.pricePerHour, i))
            }
            if keyed.count > 1 {
                keyed.sort { a, b in
                    if a.series != b.series { return a.series < b.series }
                    if a.price != b.price { return a.price < b.price }
                    if a.index == b.index { return false }
                    let ia = pools[a.index].pool.id, ib = pools[b.index].pool.id
                    if ia != ib { return ia < ib }
                    return a.index < b.index
                }
            }
        }
        return keyed.map(\.index)
    }

    /// `poolFits` on a pool read in place: copying a `PoolUsage` costs a dozen reference-count
    /// operations, and the planner checks every pool of every region it ranks.
    @inline(__always)
    static func fits(_ pools: UnsafeBufferPointer<PoolUsage>, _ i: Int, _ shape: ComputeShape) -> Bool {
        // Class and series first: they reject most pools and sit in a pool's first bytes, so a
        // rejected pool costs one cache line. Scanning every pool is bound by memory.
        guard pools[i].pool.computeClass == shape.computeClass else { return false }
        if !shape.gpuSeries.isEmpty {
            guard let series = pools[i].pool.gpuSeries, shape.gpuSeries.contains(series) else { return false }
        }
        guard pools[i].pool.cpu >= shape.cpu, pools[i].pool.memoryGiB >= shape.memoryGiB,
              (pools[i].pool.gpusPerInstance ?? 0) >= shape.gpuCount
        else { return false }
        // By index: `contains` would retain the array for its iterator, once per pool.
        var served = false
        for k in 0..<pools[i].pool.qos.count where pools[i].pool.qos[k] == shape.qos {
            served = true
            break
        }
        guard served else { return false }
        if let type = shape.instanceType, pools[i].pool.instanceType != type { return false }
        if let required = shape.requiredGPUMemoryGiB {
            guard let memory = pools[i].pool.gpuMemoryGiB, memory * Double(shape.gpuCount) >= required else { return false }
        }
        return true
    }

    /// Active regions among `indices`, in the default order. `stat` is asked only for the active
    /// ones: it scans their pools.
    static func defaultOrder(
        _ inventory: [RegionInventory], among indices: [Int], stat: (Int) -> RegionStat
    ) -> [Int] {
        rankKeys(inventory, among: indices, stat: stat)
            .sorted { ranksBefore($0, $1, in: inventory) }
            .map(\.index)
    }

    /// What the default order compares of a region. Sorting these plain keys instead of the
    /// regions avoids copying `Region`, which is slow.
    struct RankKey {
        var primary: Bool
        var price: Double
        var available: Int
        /// Into the inventory.
        var index: Int
    }

    /// Keys of the active regions among `indices`; `stat` is asked only for those.
    static func rankKeys(
        _ inventory: [RegionInventory], among indices: [Int], stat: (Int) -> RegionStat
    ) -> [RankKey] {
        var keys: [RankKey] = []
        keys.reserveCapacity(indices.count)
        for i in indices where inventory[i].region.state == .active {
            let s = stat(i)
            keys.append(RankKey(primary: inventory[i].region.primary, price: s.bestPrice, available: s.available, index: i))
        }
        return keys
    }

    /// The default order: primary first, then price, then available (most first), then id.
    static func ranksBefore(_ a: RankKey, _ b: RankKey, in inventory: [RegionInventory]) -> Bool {
        if a.primary != b.primary { return a.primary }
        if a.price != b.price { return a.price < b.price }
        if a.available != b.available { return a.available > b.available }
        let ia = inventory[a.index].region.id, ib = inventory[b.index].region.id
        if ia != ib { return ia < ib }
        return a.index < b.index
    }

    /// Id order: Swift's `String <` (Unicode scalar based, locale-independent, fast for ASCII).
    @inline(__always)
    static func idBefore(_ a: String, _ b: String) -> Bool {
        a < b
    }

    static func selectorMatches(_ selector: RegionSelector, _ region: Region) -> Bool {
        if let kind = selector.kind, kind != region.kind { return false }
        for (key, value) in selector.labels where region.labels[key] != value {
            return false
        }
        return true
    }

    static func format(_ value: Double) -> String {
        if value.isFinite, value == value.rounded(), abs(value) < 1e15 {
            return String(Int(value))
        }
        return String(value)
    }
}

// MARK: - The planner proper

extension PlacementPlanner {
    /// One region a unit (or the default policy) may use.
    struct Entry {
        /// Index into the inventory; nil for an id no region has.
        var index: Int?
        var id: String
        var unit: Int?
    }

    struct Planner {
        let input: PlacementInput
        let inventory: [RegionInventory]
        let need: Int
        var stats: [RegionStat?]
        var placements: [PlannedPlacement] = []
        var decisions: [PlacementDecision] = []
        var placed = 0
        private var indexByIdCache: [String: Int]?
        private var lastCandidates: (region: Int, pools: [Int])?

        init(_ input: PlacementInput) {
            self.input = input
            self.inventory = input.inventory
            self.need = max(0, input.replicas)
            self.stats = Array(repeating: nil, count: input.inventory.count)
        }

        // MARK: lookups

        mutating func stat(_ i: Int) -> RegionStat {
            if let s = stats[i] { return s }
            let s = RegionStat(input.shape, inventory[i].region.state, inventory[i].pools)
            stats[i] = s
            return s
        }

        /// The first region with this id.
        mutating func index(of id: String) -> Int? {
            if indexByIdCache == nil {
                var map: [String: Int] = [:]
                map.reserveCapacity(inventory.count)
                for (i, r) in inventory.enumerated() where map[r.region.id] == nil {
                    map[r.region.id] = i
                }
                indexByIdCache = map
            }
            return indexByIdCache![id]
        }

        /// Cordoned regions among `indices` (primary first, then id), then the active ones in
        /// the default order. Cordoned regions come first so that the decisions say why a
        /// region the client may have expected was not used even when the plan stops early.
        mutating func orderedRegions(_ indices: [Int]) -> [Int] {
            cordoned(indices) + activeInDefaultOrder(indices)
        }

        func cordoned(_ indices: [Int]) -> [Int] {
            // A local: closures that read `self.inventory` here copy the whole planner.
            let inventory = inventory
            var result = indices.filter { inventory[$0].region.state != .active }
            result.sort { a, b in
                // Field by field: a copy of `Region` costs a dozen reference-count operations.
                let pa = inventory[a].region.primary, pb = inventory[b].region.primary
                if pa != pb { return pa }
                let ia = inventory[a].region.id, ib = inventory[b].region.id
                if ia != ib { return PlacementPlanner.idBefore(ia, ib) }
                return a < b
            }
            return result
        }

        mutating func activeInDefaultOrder(_ indices: [Int]) -> [Int] {
            PlacementPlanner.defaultOrder(inventory, among: indices) { stat($0) }
        }

        /// The regions each unit may use, in order; a region already used by an earlier unit
        /// (or earlier in the same unit) is left out.
        mutating func resolveUnits(_ units: [PlacementUnit]) -> [[Entry]] {
            var claimed = Set<String>()
            var namedEarlier = Set<String>()
            var result: [[Entry]] = []
            result.reserveCapacity(units.count)
            for (u, unit) in units.enumerated() {
                var entries: [Entry] = []
                let ids = unit.regions ?? ["*"]
                let selector = unit.selector
                for id in ids {
                    if id == "*" {
                        let pool = inventory.indices.filter { i in
                            let r = inventory[i].region
                            if namedEarlier.contains(r.id) || claimed.contains(r.id) { return false }
                            if index(of: r.id) != i { return false }  // duplicate ids: the first wins
                            if let selector, !PlacementPlanner.selectorMatches(selector, r) { return false }
                            return true
                        }
                        for i in orderedRegions(pool) {
                            let id = inventory[i].region.id
                            claimed.insert(id)
                            entries.append(Entry(index: i, id: id, unit: u))
                        }
                    } else {
                        guard !claimed.contains(id) else { continue }
                        let i = index(of: id)
                        if let i, let selector, !PlacementPlanner.selectorMatches(selector, inventory[i].region) {
                            continue
                        }
                        claimed.insert(id)
                        entries.append(Entry(index: i, id: id, unit: u))
                    }
                }
                for id in ids where id != "*" { namedEarlier.insert(id) }
                result.append(entries)
            }
            return result
        }

        /// The default policy's regions in order, all of them, as `spread` weighs them all;
        /// `runDefaultPrefer` takes them in steps.
        mutating func defaultEntries() -> [Entry] {
            entries(orderedRegions(Array(inventory.indices)))
        }

        func entries(_ indices: [Int]) -> [Entry] {
            // Region ids are unique in a real inventory (the store's primary key): no dedupe here.
            let inventory = inventory  // as in `cordoned`
            return indices.map { Entry(index: $0, id: inventory[$0].region.id, unit: nil) }
        }

        // MARK: run

        mutating func run() {
            guard need > 0 else { return }
            if let pinned = input.pinnedRegion {
                runPinned(pinned)
                return
            }
            let policy = input.policy
            let units = policy?.units ?? []
            switch policy?.strategy ?? .prefer {
            case .prefer:
                if units.isEmpty {
                    runDefaultPrefer()
                } else {
                    runPrefer(resolveUnits(units), maxes: units.map(\.max))
                }
            case .spread:
                if units.isEmpty {
                    runSpread(defaultEntries(), maxes: [])
                } else {
                    runSpread(resolveUnits(units).flatMap { $0 }, maxes: units.map(\.max))
                }
            }
        }

        mutating func runPinned(_ id: String) {
            guard let i = index(of: id) else {
                decisions.append(PlacementDecision(region: id, replicas: 0, reason: "unknown region; pinned, no fallback"))
                return
            }
            let s = stat(i)
            guard s.active else {
                decisions.append(PlacementDecision(region: id, replicas: 0, reason: "cordoned; pinned, no fallback"))
                return
            }
            let got = take(i, up: need, unit: nil)
            var reason = describe(i, s)
            reason += "; pinned region, no fallback"
            decisions.append(PlacementDecision(region: id, replicas: got, reason: reason))
        }

        /// `runPrefer` over `defaultEntries()`, in steps. The default order puts the active
        /// primary regions before all others whatever those offer, so the others are ranked
        /// (which scans every pool they have) only when the primaries fall short. Then the first
        /// of the others usually completes the plan: it is found in one pass, and the rest are
        /// sorted only when it does not.
        mutating func runDefaultPrefer() {
            let all = Array(inventory.indices)
            let primaries = all.filter { inventory[$0].region.primary }
            runPrefer([entries(cordoned(all) + activeInDefaultOrder(primaries))], maxes: [nil])
            guard placed < need else { return }
            let others = all.filter { !inventory[$0].region.primary }
            var rest = PlacementPlanner.rankKeys(inventory, among: others) { stat($0) }
            let first = rest.indices.min { PlacementPlanner.ranksBefore(rest[$0], rest[$1], in: inventory) }
            guard let first else { return }
            runPrefer([entries([rest.remove(at: first).index])], maxes: [nil])
            guard placed < need else { return }
            rest.sort { PlacementPlanner.ranksBefore($0, $1, in: inventory) }
            runPrefer([entries(rest.map(\.index))], maxes: [nil])
        }

        mutating func runPrefer(_ units: [[Entry]], maxes: [Int?]) {
            var heldByUnit: [Int: Int] = [:]
            for h in input.held {
                if let u = h.unit { heldByUnit[u, default: 0] += max(0, h.count) }
            }
            outer: for (u, entries) in units.enumerated() {
                let cap = maxes[u]
                let held = cap == nil ? 0 : heldByUnit[u] ?? 0
                var unitLeft = cap.map { max(0, $0 - held) } ?? Int.max
                for entry in entries {
                    if placed >= need { break outer }
                    guard let i = entry.index else {
                        decisions.append(PlacementDecision(region: entry.id, replicas: 0, reason: "unknown region" + unitNote(entry.unit)))
                        continue
                    }
                    let s = stat(i)
                    guard s.active else {
                        decisions.append(PlacementDecision(region: entry.id, replicas: 0, reason: "cordoned" + unitNote(entry.unit)))
                        continue
                    }
                    if unitLeft == 0, let cap, let unit = entry.unit {
                        var reason = "unit \(unit) max \(cap) reached"
                        if held > 0 { reason += " (\(held) held)" }
                        reason += "; " + describe(i, s)
                        decisions.append(PlacementDecision(region: entry.id, replicas: 0, reason: reason))
                        continue
                    }
                    let want = min(need - placed, unitLeft)
                    let got = take(i, up: want, unit: entry.unit)
                    if unitLeft != Int.max { unitLeft -= got }
                    var reason = describe(i, s)
                    if inventory[i].region.primary { reason += "; primary region" }
                    reason += unitNote(entry.unit)
                    if let cap, let unit = entry.unit, unitLeft == 0, got > 0 {
                        reason += "; unit \(unit) max \(cap) reached"
                    }
                    decisions.append(PlacementDecision(region: entry.id, replicas: got, reason: reason))
                }
            }
        }

        mutating func runSpread(_ entries: [Entry], maxes: [Int?]) {
            let n = entries.count
            var heldByRegion: [String: Int] = [:]
            for h in input.held { heldByRegion[h.region, default: 0] += max(0, h.count) }
            var heldAt = [Int](repeating: 0, count: n)
            var avail = [Int](repeating: 0, count: n)
            var weight = [Int](repeating: 0, count: n)
            var totalHeld = 0
            for k in 0..<n {
                let e = entries[k]
                heldAt[k] = heldByRegion[e.id] ?? 0
                if let i = e.index {
                    let s = stat(i)
                    if s.active { avail[k] = s.available }
                }
                weight[k] = heldAt[k] + avail[k]
                totalHeld += heldAt[k]
            }
            // Shares of the total (held + new), with unit caps fixed one unit at a time.
            var share = [Int](repeating: 0, count: n)
            var open = Array(0..<n)
            var total = totalHeld + need
            var cappedUnits = Set<Int>()
            while true {
                let s = PlacementPlanner.largestRemainder(total, open.map { weight[$0] })
                for (j, k) in open.enumerated() { share[k] = s[j] }
                var violated: (unit: Int, cap: Int)?
                var sums: [Int: Int] = [:]
                for k in open { if let u = entries[k].unit { sums[u, default: 0] += share[k] } }
                for u in sums.keys.sorted() {
                    if let cap = u < maxes.count ? maxes[u] : nil, sums[u]! > cap {
                        violated = (u, cap)
                        break
                    }
                }
                guard let (u, cap) = violated else { break }
                let members = open.filter { entries[$0].unit == u }
                let heldInUnit = members.reduce(0) { $0 + heldAt[$1] }
                if cap <= heldInUnit {
                    for k in members { share[k] = heldAt[k] }
                    total -= heldInUnit
                } else {
                    let s = PlacementPlanner.largestRemainder(cap, members.map { weight[$0] })
                    for (j, k) in members.enumerated() { share[k] = s[j] }
                    total -= cap
                }
                cappedUnits.insert(u)
                open.removeAll { entries[$0].unit == u }
                total = max(0, total)
                if open.isEmpty { break }
            }
            // New replicas go where a region is below its share.
            let deficit = (0..<n).map { max(0, min(share[$0], weight[$0]) - heldAt[$0]) }
            var newCounts = PlacementPlanner.largestRemainder(need, deficit)
            // Unit caps on the final counts (held in a unit's regions + new ≤ max), then fill what
            // is still missing: first up to the shares, then up to what regions can give.
            var room = [Int: Int]()
            for (u, cap) in maxes.enumerated() {
                guard let cap else { continue }
                var heldInUnit = 0
                for k in 0..<n where entries[k].unit == u { heldInUnit += heldAt[k] }
                var left = max(0, cap - heldInUnit)
                for k in 0..<n where entries[k].unit == u {
                    newCounts[k] = min(newCounts[k], left)
                    left -= newCounts[k]
                }
                room[u] = left
            }
            var missing = need - newCounts.reduce(0, +)
            for limit in [deficit, avail] where missing > 0 {
                for k in 0..<n where missing > 0 {
                    var add = min(limit[k] - newCounts[k], missing)
                    if let u = entries[k].unit, let r = room[u] { add = min(add, r) }
                    guard add > 0 else { continue }
                    newCounts[k] += add
                    missing -= add
                    if let u = entries[k].unit, room[u] != nil { room[u]! -= add }
                }
            }
            for k in 0..<n {
                let e = entries[k]
                guard let i = e.index else {
                    decisions.append(PlacementDecision(region: e.id, replicas: 0, reason: "unknown region" + unitNote(e.unit)))
                    continue
                }
                let s = stat(i)
                guard s.active else {
                    decisions.append(PlacementDecision(region: e.id, replicas: 0, reason: "cordoned" + unitNote(e.unit)))
                    continue
                }
                let got = take(i, up: newCounts[k], unit: e.unit)
                var reason = describe(i, s)
                reason += "; spread share \(share[k]) of \(totalHeld + need)"
                if heldAt[k] > 0 { reason += " (\(heldAt[k]) held)" }
                if inventory[i].region.primary { reason += "; primary region" }
                reason += unitNote(e.unit)
                if let u = e.unit, cappedUnits.contains(u), let cap = maxes[u] {
                    reason += "; unit \(u) max \(cap) reached"
                }
                decisions.append(PlacementDecision(region: e.id, replicas: got, reason: reason))
            }
        }

        // MARK: helpers

        /// Region `i`'s sorted candidate pools; each region is visited once, by `take` then `describe`.
        mutating func candidates(_ i: Int) -> [Int] {
            if let last = lastCandidates, last.region == i { return last.pools }
            let pools = PlacementPlanner.sortedCandidates(input.shape, inventory[i])
            lastCandidates = (i, pools)
            return pools
        }

        /// Takes up to `want` replicas from region `i`'s candidate pools in order.
        mutating func take(_ i: Int, up want: Int, unit: Int?) -> Int {
            guard want > 0 else { return 0 }
            var got = 0
            for p in candidates(i) {
                if got >= want { break }
                // Field by field: copies of the region and the pool cost reference counting.
                let n = min(inventory[i].pools[p].grantable, want - got)
                if n > 0 {
                    placements.append(PlannedPlacement(
                        region: inventory[i].region.id, poolId: inventory[i].pools[p].pool.id, count: n, unit: unit))
                    got += n
                }
            }
            placed += got
            return got
        }

        func unitNote(_ unit: Int?) -> String {
            guard let unit else { return "" }
            return "; unit \(unit)"
        }

        /// "T4: 2 of 10 available" or "no pool matches …".
        mutating func describe(_ i: Int, _ s: RegionStat) -> String {
            let shape = input.shape
            guard s.matching > 0 else {
                return PlacementPlanner.noMatch(shape)
            }
            var label = ""
            if shape.computeClass == .gpu {
                var seen: [String] = []
                for p in candidates(i) {
                    if let series = inventory[i].pools[p].pool.gpuSeries, !seen.contains(series) { seen.append(series) }
                }
                label = seen.isEmpty ? shape.computeClass.rawValue : seen.joined(separator: "/")
            } else {
                label = shape.computeClass.rawValue
            }
            return "\(label): \(s.available) of \(s.capacity) available"
        }

        // MARK: finish

        mutating func finish() -> PlacementPlan {
            if placed < need && input.allOrNothing {
                let note = "; nothing placed: all-or-nothing needs \(need), only \(placed) fit"
                for d in decisions.indices where decisions[d].replicas > 0 {
                    decisions[d].replicas = 0
                    decisions[d].reason += note
                }
                return PlacementPlan(placements: [], decisions: decisions, placed: 0, satisfied: false)
            }
            return PlacementPlan(placements: placements, decisions: decisions, placed: placed, satisfied: placed == need)
        }
    }

    /// "no pool matches class gpu, series [A10], 1 GPU, 4 CPU, 16 GiB".
    static func noMatch(_ shape: ComputeShape) -> String {
        var parts = ["class \(shape.computeClass.rawValue)"]
        if !shape.gpuSeries.isEmpty { parts.append("series [\(shape.gpuSeries.joined(separator: ", "))]") }
        if shape.gpuCount > 0 { parts.append("\(shape.gpuCount) GPU") }
        if let required = shape.requiredGPUMemoryGiB { parts.append("\(format(required)) GiB GPU memory") }
        parts.append("\(format(shape.cpu)) CPU")
        parts.append("\(format(shape.memoryGiB)) GiB")
        if shape.qos != .default { parts.append("qos \(shape.qos.rawValue)") }
        if let type = shape.instanceType { parts.append("instance type \(type)") }
        return "no pool matches " + parts.joined(separator: ", ")
    }

    /// Largest remainder: `total` over `weights` in proportion, each at most its weight; ties
    /// of the remainder go to the earlier index. When the weights sum to at most `total`, every
    /// entry gets its full weight.
    public static func largestRemainder(_ total: Int, _ weights: [Int]) -> [Int] {
        let w = weights.map { max(0, $0) }
        let sum = w.reduce(0, +)
        guard total > 0, sum > 0 else { return [Int](repeating: 0, count: w.count) }
        if total >= sum { return w }
        var result = [Int](repeating: 0, count: w.count)
        var remainders: [(rem: Int, index: Int)] = []
        remainders.reserveCapacity(w.count)
        var given = 0
        for k in w.indices where w[k] > 0 {
            let product = total.multipliedFullWidth(by: w[k])
            let (q, r) = sum.dividingFullWidth(product)
            result[k] = q
            given += q
            remainders.append((r, k))
        }
        var left = total - given
        if left > 0 {
            remainders.sort { a, b in a.rem != b.rem ? a.rem > b.rem : a.index < b.index }
            for (_, k) in remainders where left > 0 {
                result[k] += 1
                left -= 1
            }
        }
        return result
    }
}
