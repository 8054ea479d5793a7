import Foundation

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
        /// Pools that would fit but for the shape's price cap, and the cheapest of them.
        var overCap: Int
        var cheapestOverCap: Double

        /// A region's state and pools, passed apart: passing the `RegionInventory` would copy
        /// it, a dozen reference-count operations.
        init(_ shape: borrowing ComputeShape, _ state: RegionState, _ pools: borrowing [PoolUsage]) {
            active = state == .active
            matching = 0
            available = 0
            capacity = 0
            bestPrice = .infinity
            overCap = 0
            cheapestOverCap = .infinity
            guard active else { return }
            // Read the pools in place: copying a `PoolUsage` costs a dozen reference-count operations.
            var matching = 0, available = 0, capacity = 0, bestPrice = Double.infinity
            var overCap = 0, cheapestOverCap = Double.infinity
            let priceCap = shape.maxPricePerHour ?? .infinity
            pools.withUnsafeBufferPointer { pools in
                for i in 0..<pools.count where PlacementPlanner.fitsAtAnyPrice(pools, i, shape) {
                    if pools[i].pool.pricePerHour > priceCap {
                        overCap += 1
                        cheapestOverCap = min(cheapestOverCap, pools[i].pool.pricePerHour)
                        continue
                    }
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
            self.overCap = overCap
            self.cheapestOverCap = cheapestOverCap
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
        if let cap = shape.maxPricePerHour, pools[i].pool.pricePerHour > cap { return false }
        return fitsAtAnyPrice(pools, i, shape)
    }

    /// `fits`, the price cap aside: what the decisions tell apart from "no pool matches".
    @inline(__always)
    static func fitsAtAnyPrice(_ pools: UnsafeBufferPointer<PoolUsage>, _ i: Int, _ shape: ComputeShape) -> Bool {
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
        if shape.gpuVendor != nil || shape.minGPUMemoryGiB != nil || shape.gpuInterconnect != nil
            || shape.gpuPartition != nil
        {
            return offersAccelerator(pools[i].pool, shape)
        }
        return true
    }

    /// The accelerator constraints beyond class and series: vendor, memory per device,
    /// interconnect and partition profile. Rare in requests, so kept out of the hot path.
    static func offersAccelerator(_ pool: Pool, _ shape: ComputeShape) -> Bool {
        if let vendor = shape.gpuVendor, pool.gpuVendor != vendor { return false }
        if let minimum = shape.minGPUMemoryGiB, (pool.gpuMemoryGiB ?? 0) < minimum { return false }
        if let link = shape.gpuInterconnect, !pool.gpuInterconnect.contains(link) { return false }
        if let profile = shape.gpuPartition, !pool.gpuPartitions.contains(profile) { return false }
        return true
    }

    /// Active regions among `indices`, in the default order. `stat` is asked only for the active
    /// ones: it scans their pools.
    /// `byPrice`: cheapest first instead (`cheapest` strategy).
    static func defaultOrder(
        _ inventory: [RegionInventory], among indices: [Int], byPrice: Bool = false, stat: (Int) -> RegionStat
    ) -> [Int] {
        rankKeys(inventory, among: indices, stat: stat)
            .sorted { byPrice ? cheaperBefore($0, $1, in: inventory) : ranksBefore($0, $1, in: inventory) }
            .map(\.index)
    }

    /// Active regions cheapest first: by the price of the pool that would serve the shape
    /// (regions that can give nothing last), then primary first, then available (most
    /// first), then id. `GET /v1/inventory?sort=price` and the `cheapest` strategy.
    public static func priceRegionOrder(_ shape: ComputeShape, _ inventory: [RegionInventory]) -> [RegionInventory] {
        defaultOrder(inventory, among: Array(inventory.indices), byPrice: true) {
            RegionStat(shape, inventory[$0].region.state, inventory[$0].pools)
        }.map { inventory[$0] }
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

    /// The price order: price, then primary first, then available (most first), then id.
    static func cheaperBefore(_ a: RankKey, _ b: RankKey, in inventory: [RegionInventory]) -> Bool {
        if a.price != b.price { return a.price < b.price }
        return ranksBefore(a, b, in: inventory)
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

    /// "no pool matches class gpu, series [A10], 1 GPU, 4 CPU, 16 GiB".
    static func noMatch(_ shape: ComputeShape) -> String {
        var parts = ["class \(shape.computeClass.rawValue)"]
        if !shape.gpuSeries.isEmpty { parts.append("series [\(shape.gpuSeries.joined(separator: ", "))]") }
        if let vendor = shape.gpuVendor { parts.append("vendor \(vendor.rawValue)") }
        if shape.gpuCount > 0 { parts.append("\(shape.gpuCount) GPU") }
        if let minimum = shape.minGPUMemoryGiB { parts.append("at least \(format(minimum)) GiB per GPU") }
        if let profile = shape.gpuPartition { parts.append("partition \(profile)") }
        if let link = shape.gpuInterconnect { parts.append("interconnect \(link)") }
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
