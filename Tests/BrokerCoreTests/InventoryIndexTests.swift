import XCTest
@testable import BrokerCore

/// `Inventory`: kept by changes, and its index changes which regions a plan reads, never the plan.
final class InventoryIndexTests: XCTestCase {
    /// Over the property tests' random inputs, a plan with the index equals the plan without.
    func testIndexedPlansEqualPlansOverEveryRegion() {
        var rng = SplitMix64(seed: 2113)
        for n in 0..<3000 {
            let input = PlacementPropertyTests.randomInput(&rng)
            var indexed = input
            indexed.index = Inventory(input.inventory).index
            XCTAssertEqual(PlacementPlanner.plan(indexed), PlacementPlanner.plan(input), "case \(n)")
        }
    }

    /// Grants too (policy, preemption and the rows' vSwitches and idle reuse read the index).
    func testIndexedGrantPlansEqualGrantPlansOverEveryRegion() {
        var rng = SplitMix64(seed: 42)
        for n in 0..<1000 {
            let placement = PlacementPropertyTests.randomInput(&rng)
            let request = AllocationRequest(
                shape: placement.shape, replicas: placement.replicas, region: placement.pinnedRegion,
                placement: placement.policy, allOrNothing: placement.allOrNothing, queue: Bool.random(using: &rng))
            var plain = GrantInput(request: request, inventory: placement.inventory)
            plain.mayQueue = true
            if Bool.random(using: &rng) {
                plain.preemptible = placement.inventory.flatMap { r in
                    r.pools.prefix(1).map { (seq: Int64(r.pools.count), region: r.region.id, poolId: $0.pool.id) }
                }
            }
            var indexed = plain
            indexed.index = Inventory(placement.inventory).index
            XCTAssertEqual(GrantPlanner.plan(indexed), GrantPlanner.plan(plain), "case \(n)")
        }
    }

    /// With 1,000 regions of which 3 have T4 pools, a T4 plan that the primary cannot meet
    /// computes the figures of those 3 and the primary only, not of 1,000 regions.
    func testPlanReadsOnlyTheRegionsWithPoolsOfTheShape() {
        let regions = (0..<1000).map { r -> RegionInventory in
            let id = String(format: "r%04d", r)
            let pools = r % 400 == 7
                ? [gpuPool("t4", id, series: "T4", capacity: 5), cpuPool("g", id)]
                : (0..<20).map { cpuPool("g\($0)", id) }
            return inv(mkRegion(id, primary: r == 0), pools)
        }
        let inventory = Inventory(regions)
        XCTAssertEqual(inventory.index.regions(fitting: t4Shape), [7, 407, 807])
        var planner = PlacementPlanner.Planner(PlacementInput(shape: t4Shape, replicas: 2, inventory: inventory))
        planner.run()
        XCTAssertEqual(planner.finish().byRegion, ["r0007": 2])
        XCTAssertLessThanOrEqual(planner.stats.count, 4)
        // Without the index, every region is read; the plan is the same.
        var full = PlacementPlanner.Planner(PlacementInput(shape: t4Shape, replicas: 2, inventory: regions))
        full.run()
        XCTAssertEqual(full.stats.count, 1000)
        XCTAssertEqual(full.finish(), planner.finish())
    }

    /// Applying changes gives what building from all rows gives: counters, a changed
    /// shape, a new pool, a new region (in id order), a region cordoned.
    func testApplyingChangesEqualsBuildingAfresh() {
        var rng = SplitMix64(seed: 7)
        for n in 0..<500 {
            let before = PlacementPropertyTests.randomInventory(&rng)
            var after = before
            var changedRegions: [Region] = []
            var changedPools: [PoolUsage] = []
            for r in after.indices {
                if Int.random(in: 0..<4, using: &rng) == 0 {
                    after[r].region.state = after[r].region.state == .active ? .cordoned : .active
                    changedRegions.append(after[r].region)
                }
                for p in after[r].pools.indices where Bool.random(using: &rng) {
                    after[r].pools[p].allocated += 1
                    if Int.random(in: 0..<5, using: &rng) == 0 { after[r].pools[p].pool.gpuSeries = "B200" }
                    changedPools.append(after[r].pools[p])
                }
                if Int.random(in: 0..<4, using: &rng) == 0 {
                    let added = gpuPool("\(after[r].region.id)-new", after[r].region.id, series: "B200")
                    after[r].pools.append(added)
                    after[r].pools.sort { $0.pool.id < $1.pool.id }
                    changedPools.append(added)
                }
            }
            if Bool.random(using: &rng) {
                let region = mkRegion("r3a")
                let pool = gpuPool("r3a-p0", "r3a", series: "B200")
                after.append(inv(region, [pool]))
                after.sort { $0.region.id < $1.region.id }
                changedRegions.append(region)
                changedPools.append(pool)
            }
            let applied = Inventory(before).applying(regions: changedRegions, pools: changedPools.shuffled(using: &rng))
            let fresh = Inventory(after)
            XCTAssertTrue(applied.regions == fresh.regions, "case \(n)")
            let b200 = ComputeShape(computeClass: .gpu, gpuSeries: ["B200", "T4"], gpuCount: 1, cpu: 1, memoryGiB: 1)
            for shape in [b200, t4Shape, cpuShape] {
                XCTAssertEqual(applied.index.regions(fitting: shape), fresh.index.regions(fitting: shape), "case \(n)")
                XCTAssertEqual(
                    PlacementPlanner.plan(PlacementInput(shape: shape, replicas: 3, inventory: applied)),
                    PlacementPlanner.plan(PlacementInput(shape: shape, replicas: 3, inventory: after)), "case \(n)")
            }
        }
    }

    /// Counter changes keep the index (and its arrays) of the version they were applied to.
    func testCounterChangesShareTheIndex() {
        let regions = [inv(mkRegion("a", primary: true), [gpuPool("t4", "a")])]
        let inventory = Inventory(regions)
        var used = regions[0].pools[0]
        used.allocated = 3
        let next = inventory.applying(regions: [], pools: [used])
        XCTAssertTrue(next.index === inventory.index)
        XCTAssertEqual(next.regions[0].pools[0].allocated, 3)
        XCTAssertEqual(inventory.regions[0].pools[0].allocated, 0)
    }

    /// `GET /v1/inventory`'s lines read from the index equal those read from every region.
    func testAvailabilityEqualsAvailabilityOverEveryRegion() {
        var rng = SplitMix64(seed: 99)
        for n in 0..<1000 {
            let regions = PlacementPropertyTests.randomInventory(&rng)
            let shape = PlacementPropertyTests.randomShape(&rng)
            for sort in InventorySort.allCases {
                let ordered = sort == .price
                    ? PlacementPlanner.priceRegionOrder(shape, regions) : PlacementPlanner.defaultRegionOrder(shape, regions)
                let expected = ordered.map { region in
                    let best = PlacementPlanner.candidatePools(shape, in: region).first { $0.grantable > 0 }
                    return RegionAvailability(
                        region: region.region.id, availableReplicas: PlacementPlanner.replicasAvailable(shape, in: region),
                        bestPool: best?.pool.id, pricePerHour: best?.pool.pricePerHour)
                }
                XCTAssertEqual(Inventory(regions).availability(shape, sort: sort), expected, "case \(n)")
            }
        }
    }
}
