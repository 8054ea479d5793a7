import Foundation

/// Every region with its pools, as placement reads them, and an index of the regions by
/// the pool shapes they have: a plan for one shape then looks at the regions that have
/// pools of it, not at every pool. Kept by changes (`applying`): rows that changed replace
/// theirs, and the arrays are shared copy-on-write with earlier versions, so a reader of
/// one version never copies the pools and a change copies only its own region's pools.
public struct Inventory: Sendable {
    /// In id order (as the store reads them), each region's pools in id order.
    public private(set) var regions: [RegionInventory]
    /// Immutable, shared by every version whose regions and pool shapes are the same.
    public private(set) var index: InventoryIndex

    public init(_ regions: [RegionInventory] = []) {
        self.regions = regions
        self.index = InventoryIndex(regions)
    }

    /// This inventory with `changedRegions` and `changedPools` written over it: each
    /// replaces the row with its id, or is added in id order. A pool of a region that is
    /// neither here nor among the changes is dropped (its region was removed).
    public func applying(regions changedRegions: [Region], pools changedPools: [PoolUsage]) -> Inventory {
        guard !changedRegions.isEmpty || !changedPools.isEmpty else { return self }
        var regions = regions
        var position = index.position
        var reindex = false, added = false
        var grown = Set<Int>()
        for region in changedRegions {
            if let i = position[region.id] {
                let old = regions[i].region
                regions[i].region = region
                reindex = reindex || old.primary != region.primary || old.state != region.state
            } else {
                regions.append(RegionInventory(region: region, pools: []))
                position[region.id] = regions.count - 1
                reindex = true
                added = true
            }
        }
        for pool in changedPools {
            guard let r = position[pool.pool.regionId] else { continue }
            if let p = regions[r].pools.firstIndex(where: { $0.pool.id == pool.pool.id }) {
                let old = regions[r].pools[p].pool
                regions[r].pools[p] = pool
                reindex = reindex || !InventoryIndex.sameKeys(old, pool.pool)
            } else {
                regions[r].pools.append(pool)
                grown.insert(r)
                reindex = true
            }
        }
        for r in grown { regions[r].pools.sort { $0.pool.id < $1.pool.id } }
        if added {
            regions.sort { $0.region.id < $1.region.id }
        }
        var next = self
        next.regions = regions
        if reindex { next.index = InventoryIndex(regions) }
        return next
    }

    /// The position of the region with this id.
    public func position(of regionId: String) -> Int? {
        index.position[regionId]
    }
}

/// What `Inventory` knows of its regions beyond the regions themselves: positions by id,
/// the primary and cordoned regions, and, per pool key (class; class and GPU series; class
/// and instance type), the regions with a pool of that key, in position order. Built in
/// one pass over the pools; rebuilt only when a region or a pool's key changes, not when
/// pool use or capacity does (what grants and reports change).
public final class InventoryIndex: Sendable {
    let position: [String: Int]
    /// Active regions marked primary, in position order.
    let primaries: [Int]
    /// Regions that are not active, in position order.
    let inactive: [Int]
    private let regionsByKey: [String: [Int]]

    init(_ regions: [RegionInventory]) {
        var position: [String: Int] = [:]
        position.reserveCapacity(regions.count)
        var primaries: [Int] = [], inactive: [Int] = []
        var byKey: [String: [Int]] = [:]
        for (i, r) in regions.enumerated() {
            if position[r.region.id] == nil { position[r.region.id] = i }
            if r.region.state != .active {
                inactive.append(i)
            } else if r.region.primary {
                primaries.append(i)
            }
            for usage in r.pools {
                for key in Self.keys(usage.pool) where byKey[key]?.last != i {
                    byKey[key, default: []].append(i)
                }
            }
        }
        self.position = position
        self.primaries = primaries
        self.inactive = inactive
        self.regionsByKey = byKey
    }

    static func keys(_ pool: Pool) -> [String] {
        let c = pool.computeClass.rawValue
        var keys = ["c|" + c, "t|" + c + "|" + pool.instanceType]
        if let series = pool.gpuSeries { keys.append("s|" + c + "|" + series) }
        return keys
    }

    static func sameKeys(_ a: Pool, _ b: Pool) -> Bool {
        a.computeClass == b.computeClass && a.gpuSeries == b.gpuSeries && a.instanceType == b.instanceType
    }

    /// Positions of the regions that have a pool of the shape's class, of one of its GPU
    /// series when it names some, and of its instance type when it names one: a superset of
    /// the regions with a pool that fits the shape (rule 1), ascending. Every other region
    /// has no such pool.
    public func regions(fitting shape: ComputeShape) -> [Int] {
        let c = shape.computeClass.rawValue
        if let type = shape.instanceType { return regionsByKey["t|" + c + "|" + type] ?? [] }
        if shape.gpuSeries.isEmpty { return regionsByKey["c|" + c] ?? [] }
        if shape.gpuSeries.count == 1 { return regionsByKey["s|" + c + "|" + shape.gpuSeries[0]] ?? [] }
        var union = Set<Int>()
        for series in shape.gpuSeries { union.formUnion(regionsByKey["s|" + c + "|" + series] ?? []) }
        return union.sorted()
    }
}

/// One region's line of `GET /v1/inventory`: replicas of a shape it can give now, and the
/// pool a grant would use first.
public struct RegionAvailability: Sendable, Equatable {
    public var region: String
    public var availableReplicas: Int
    public var bestPool: String?
    public var pricePerHour: Double?
}

extension Inventory {
    /// Every active region, in the default placement order or cheapest first, with what it
    /// can give of `shape`. Only the regions with pools of the shape's key are read; the
    /// others can give nothing.
    public func availability(_ shape: ComputeShape, sort: InventorySort) -> [RegionAvailability] {
        let fitting = Set(index.regions(fitting: shape))
        let regions = regions
        let stat = { (i: Int) in
            PlacementPlanner.RegionStat(shape, regions[i].region.state, fitting.contains(i) ? regions[i].pools : [])
        }
        var stats: [Int: PlacementPlanner.RegionStat] = [:]
        let order = PlacementPlanner.defaultOrder(regions, among: Array(regions.indices), byPrice: sort == .price) { i in
            let s = stat(i)
            stats[i] = s
            return s
        }
        return order.map { i in
            var line = RegionAvailability(region: regions[i].region.id, availableReplicas: stats[i]?.available ?? 0)
            if line.availableReplicas > 0, let best = Self.firstGrantable(shape, regions[i].pools) {
                line.bestPool = best.id
                line.pricePerHour = best.pricePerHour
            }
            return line
        }
    }

    /// The first pool in use order (rule 1: series order, price, id) that can give a replica
    /// now: `candidatePools(...).first { $0.grantable > 0 }` in one pass, without sorting.
    static func firstGrantable(_ shape: ComputeShape, _ pools: [PoolUsage]) -> Pool? {
        var best: (series: Int, price: Double, index: Int)?
        pools.withUnsafeBufferPointer { pools in
            for i in 0..<pools.count where pools[i].grantable > 0 && PlacementPlanner.fits(pools, i, shape) {
                var series = 0
                if !shape.gpuSeries.isEmpty, let s = pools[i].pool.gpuSeries {
                    series = shape.gpuSeries.firstIndex(of: s) ?? Int.max
                }
                let price = pools[i].pool.pricePerHour
                if let b = best {
                    if series != b.series ? series > b.series
                        : price != b.price ? price > b.price : pools[i].pool.id >= pools[b.index].pool.id
                    {
                        continue
                    }
                }
                best = (series, price, i)
            }
        }
        return best.map { pools[$0.index].pool }
    }
}
