import XCTest
@testable import BrokerCore

final class PlacementTests: XCTestCase {
    // MARK: Seed scenarios: default (primary) region

    func testCPUReplicasGoToThePrimaryRegion() {
        let inventory = [
            inv(mkRegion("cn-hangzhou"), [cpuPool("hz-c2", "cn-hangzhou", price: 0.01)]),
            inv(mkRegion("cn-beijing", primary: true), [cpuPool("bj-c2", "cn-beijing", price: 0.2)]),
        ]
        let plan = PlacementPlanner.plan(PlacementInput(shape: cpuShape, replicas: 2, inventory: inventory))
        XCTAssertTrue(plan.satisfied)
        XCTAssertEqual(plan.placed, 2)
        XCTAssertEqual(plan.placements, [PlannedPlacement(region: "cn-beijing", poolId: "bj-c2", count: 2, unit: nil)])
        XCTAssertEqual(plan.decisions.count, 1, "satisfied in the first region: nothing else considered")
        XCTAssertEqual(plan.decisions[0].region, "cn-beijing")
        XCTAssertEqual(plan.decisions[0].replicas, 2)
        XCTAssertEqual(plan.decisions[0].reason, "general-purpose: 10 of 10 available; primary region")
    }

    func testGPUReplicasGoToThePrimaryRegion() {
        let inventory = [
            inv(mkRegion("cn-beijing", primary: true), [gpuPool("bj-t4", "cn-beijing", capacity: 2)]),
            inv(mkRegion("cn-shanghai"), [gpuPool("sh-t4", "cn-shanghai", price: 0.5)]),
        ]
        let plan = PlacementPlanner.plan(PlacementInput(shape: t4Shape, replicas: 2, inventory: inventory))
        XCTAssertTrue(plan.satisfied)
        XCTAssertEqual(plan.placements, [PlannedPlacement(region: "cn-beijing", poolId: "bj-t4", count: 2)])
        XCTAssertEqual(plan.decisions, [PlacementDecision(region: "cn-beijing", replicas: 2, reason: "T4: 2 of 2 available; primary region")])
    }

    // MARK: Pinned region

    func testPinnedRegionNeverFallsBack() {
        let inventory = [
            inv(mkRegion("cn-beijing", primary: true), [gpuPool("bj-t4", "cn-beijing")]),
            inv(mkRegion("cn-shanghai"), [gpuPool("sh-t4", "cn-shanghai", capacity: 10, allocated: 10)]),
        ]
        for allOrNothing in [true, false] {
            let plan = PlacementPlanner.plan(PlacementInput(
                shape: t4Shape, replicas: 2, pinnedRegion: "cn-shanghai", allOrNothing: allOrNothing, inventory: inventory))
            XCTAssertFalse(plan.satisfied)
            XCTAssertEqual(plan.placed, 0)
            XCTAssertEqual(plan.placements, [])
            XCTAssertEqual(plan.decisionRegions, ["cn-shanghai"])
            XCTAssertTrue(plan.decisions[0].reason.contains("T4: 0 of 10 available"), plan.decisions[0].reason)
            XCTAssertTrue(plan.decisions[0].reason.contains("pinned"), plan.decisions[0].reason)
        }
    }

    func testPinnedRegionPlacesOnlyThere() {
        let inventory = [
            inv(mkRegion("cn-beijing", primary: true), [gpuPool("bj-t4", "cn-beijing")]),
            inv(mkRegion("cn-shanghai"), [gpuPool("sh-t4", "cn-shanghai", capacity: 3)]),
        ]
        let plan = PlacementPlanner.plan(PlacementInput(
            shape: t4Shape, replicas: 5, pinnedRegion: "cn-shanghai", allOrNothing: false, inventory: inventory))
        XCTAssertEqual(plan.placements, [PlannedPlacement(region: "cn-shanghai", poolId: "sh-t4", count: 3)])
        XCTAssertEqual(plan.placed, 3)
        XCTAssertFalse(plan.satisfied)
    }

    func testPinnedUnknownOrCordonedRegion() {
        let inventory = [
            inv(mkRegion("cn-beijing", primary: true), [gpuPool("bj-t4", "cn-beijing")]),
            inv(mkRegion("cn-shanghai", state: .cordoned), [gpuPool("sh-t4", "cn-shanghai")]),
        ]
        let unknown = PlacementPlanner.plan(PlacementInput(shape: t4Shape, replicas: 1, pinnedRegion: "mars-1", inventory: inventory))
        XCTAssertEqual(unknown.placed, 0)
        XCTAssertEqual(unknown.decisions.count, 1)
        XCTAssertEqual(unknown.decisions[0].region, "mars-1")
        XCTAssertTrue(unknown.decisions[0].reason.contains("unknown region"))
        let cordoned = PlacementPlanner.plan(PlacementInput(shape: t4Shape, replicas: 1, pinnedRegion: "cn-shanghai", inventory: inventory))
        XCTAssertEqual(cordoned.placed, 0)
        XCTAssertEqual(cordoned.decisions.count, 1)
        XCTAssertTrue(cordoned.decisions[0].reason.hasPrefix("cordoned"))
    }

    func testPinnedRegionIgnoresThePolicy() {
        let inventory = [
            inv(mkRegion("a", primary: true), [gpuPool("a-t4", "a")]),
            inv(mkRegion("b"), [gpuPool("b-t4", "b")]),
        ]
        let policy = PlacementPolicy(strategy: .prefer, units: [PlacementUnit(regions: ["a"], max: 1)])
        let plan = PlacementPlanner.plan(PlacementInput(shape: t4Shape, replicas: 3, pinnedRegion: "b", policy: policy, inventory: inventory))
        XCTAssertEqual(plan.placements, [PlannedPlacement(region: "b", poolId: "b-t4", count: 3, unit: nil)])
    }

    // MARK: Inventory-aware fallback

    func testPrimaryOutOfStockFallsBackByPriceThenAvailableThenId() {
        let inventory = [
            inv(mkRegion("cn-shanghai"), [gpuPool("sh", "cn-shanghai", capacity: 5, price: 2.0)]),
            inv(mkRegion("cn-zhangjiakou"), [gpuPool("zjk", "cn-zhangjiakou", capacity: 3, price: 1.5)]),
            inv(mkRegion("cn-hangzhou"), [gpuPool("hz", "cn-hangzhou", capacity: 1, price: 1.5)]),
            inv(mkRegion("cn-beijing", primary: true), [gpuPool("bj", "cn-beijing", capacity: 10, price: 1.0, allocated: 9)]),
            inv(mkRegion("cn-shenzhen"), [gpuPool("sz", "cn-shenzhen", capacity: 3, price: 1.5)]),
            inv(mkRegion("cn-empty"), [gpuPool("em", "cn-empty", capacity: 0, price: 0.1)]),
            inv(mkRegion("cn-cpu-only"), [cpuPool("co", "cn-cpu-only")]),
        ]
        let order = PlacementPlanner.defaultRegionOrder(t4Shape, inventory).map(\.region.id)
        XCTAssertEqual(order, ["cn-beijing", "cn-shenzhen", "cn-zhangjiakou", "cn-hangzhou", "cn-shanghai", "cn-cpu-only", "cn-empty"])

        let plan = PlacementPlanner.plan(PlacementInput(shape: t4Shape, replicas: 4, inventory: inventory))
        XCTAssertTrue(plan.satisfied)
        XCTAssertEqual(plan.placements, [
            PlannedPlacement(region: "cn-beijing", poolId: "bj", count: 1),
            PlannedPlacement(region: "cn-shenzhen", poolId: "sz", count: 3),
        ])
        XCTAssertEqual(plan.decisionRegions, ["cn-beijing", "cn-shenzhen"])
        XCTAssertEqual(plan.decisions[0].reason, "T4: 1 of 10 available; primary region")
        XCTAssertEqual(plan.decisions[1].reason, "T4: 3 of 3 available")

        let more = PlacementPlanner.plan(PlacementInput(shape: t4Shape, replicas: 9, inventory: inventory))
        XCTAssertEqual(more.byRegion, ["cn-beijing": 1, "cn-shenzhen": 3, "cn-zhangjiakou": 3, "cn-hangzhou": 1, "cn-shanghai": 1])
        XCTAssertEqual(more.decisionRegions, ["cn-beijing", "cn-shenzhen", "cn-zhangjiakou", "cn-hangzhou", "cn-shanghai"])
    }

    func testNotEnoughAnywhereAllOrNothingExplainsEveryRegion() {
        let inventory = [
            inv(mkRegion("a", primary: true), [gpuPool("a-t4", "a", capacity: 10, allocated: 10)]),
            inv(mkRegion("b"), [gpuPool("b-t4", "b", capacity: 2)]),
            inv(mkRegion("c"), [gpuPool("c-a10", "c", series: "A10")]),
            inv(mkRegion("d", state: .cordoned), [gpuPool("d-t4", "d")]),
        ]
        let plan = PlacementPlanner.plan(PlacementInput(shape: t4Shape, replicas: 3, inventory: inventory))
        XCTAssertEqual(plan.placements, [])
        XCTAssertEqual(plan.placed, 0)
        XCTAssertFalse(plan.satisfied)
        XCTAssertEqual(Set(plan.decisionRegions), ["a", "b", "c", "d"])
        XCTAssertEqual(plan.decisionRegions.first, "d", "cordoned regions are reported first")
        XCTAssertTrue(plan.decisions.allSatisfy { $0.replicas == 0 })
        XCTAssertEqual(plan.decision("d")?.reason, "cordoned")
        XCTAssertTrue(plan.decision("a")!.reason.hasPrefix("T4: 0 of 10 available"), plan.decision("a")!.reason)
        XCTAssertTrue(plan.decision("b")!.reason.hasPrefix("T4: 2 of 2 available"))
        XCTAssertTrue(plan.decision("b")!.reason.contains("all-or-nothing needs 3, only 2 fit"), plan.decision("b")!.reason)
        XCTAssertEqual(plan.decision("c")?.reason, "no pool matches class gpu, series [T4], 1 GPU, 4 CPU, 16 GiB")

        let partial = PlacementPlanner.plan(PlacementInput(shape: t4Shape, replicas: 3, allOrNothing: false, inventory: inventory))
        XCTAssertEqual(partial.placements, [PlannedPlacement(region: "b", poolId: "b-t4", count: 2)])
        XCTAssertEqual(partial.placed, 2)
        XCTAssertFalse(partial.satisfied)
        XCTAssertEqual(partial.decision("b")?.replicas, 2)
    }

    func testNoMatchReasonNamesTheShape() {
        let shape = ComputeShape(computeClass: .gpu, gpuSeries: ["A10"], gpuCount: 1, cpu: 4, memoryGiB: 16)
        let inventory = [inv(mkRegion("cn-beijing", primary: true), [gpuPool("t4", "cn-beijing")])]
        let plan = PlacementPlanner.plan(PlacementInput(shape: shape, replicas: 1, inventory: inventory))
        XCTAssertEqual(plan.decisions, [PlacementDecision(region: "cn-beijing", replicas: 0,
                                                          reason: "no pool matches class gpu, series [A10], 1 GPU, 4 CPU, 16 GiB; primary region")])
        let odd = ComputeShape(computeClass: .performance, qos: .bestEffort, cpu: 2.5, memoryGiB: 5, instanceType: "ecs.x")
        XCTAssertEqual(PlacementPlanner.noMatch(odd), "no pool matches class performance, 2.5 CPU, 5 GiB, qos best-effort, instance type ecs.x")
    }

    // MARK: Cordoned

    func testCordonedPrimaryIsSkippedAndReported() {
        let inventory = [
            inv(mkRegion("cn-beijing", primary: true, state: .cordoned), [gpuPool("bj", "cn-beijing")]),
            inv(mkRegion("cn-shanghai"), [gpuPool("sh", "cn-shanghai")]),
        ]
        XCTAssertEqual(PlacementPlanner.candidatePools(t4Shape, in: inventory[0]), [])
        XCTAssertEqual(PlacementPlanner.replicasAvailable(t4Shape, in: inventory[0]), 0)
        XCTAssertEqual(PlacementPlanner.defaultRegionOrder(t4Shape, inventory).map(\.region.id), ["cn-shanghai"])
        let plan = PlacementPlanner.plan(PlacementInput(shape: t4Shape, replicas: 2, inventory: inventory))
        XCTAssertEqual(plan.placements, [PlannedPlacement(region: "cn-shanghai", poolId: "sh", count: 2)])
        XCTAssertEqual(plan.decisions, [
            PlacementDecision(region: "cn-beijing", replicas: 0, reason: "cordoned"),
            PlacementDecision(region: "cn-shanghai", replicas: 2, reason: "T4: 10 of 10 available"),
        ])
    }

    // MARK: Rule 1 filters and order

    func testSeriesPreferenceOrderBeatsPrice() {
        let shape = ComputeShape(computeClass: .gpu, gpuSeries: ["A10", "L20"], gpuCount: 1, cpu: 4, memoryGiB: 16)
        let region = inv(mkRegion("r", primary: true), [
            gpuPool("l20", "r", series: "L20", memory: 48, capacity: 5, price: 0.5),
            gpuPool("a10-b", "r", series: "A10", memory: 24, capacity: 2, price: 2.0),
            gpuPool("a10-a", "r", series: "A10", memory: 24, capacity: 1, price: 2.0),
            gpuPool("a10-cheap", "r", series: "A10", memory: 24, capacity: 1, price: 1.0),
            gpuPool("t4", "r", series: "T4", capacity: 9, price: 0.1),
        ])
        XCTAssertEqual(PlacementPlanner.candidatePools(shape, in: region).map(\.pool.id), ["a10-cheap", "a10-a", "a10-b", "l20"])
        XCTAssertEqual(PlacementPlanner.replicasAvailable(shape, in: region), 9)
        let plan = PlacementPlanner.plan(PlacementInput(shape: shape, replicas: 6, inventory: [region]))
        XCTAssertEqual(plan.placements.map(\.poolId), ["a10-cheap", "a10-a", "a10-b", "l20"])
        XCTAssertEqual(plan.placements.map(\.count), [1, 1, 2, 2])
        XCTAssertEqual(plan.decisions[0].reason, "A10/L20: 9 of 9 available; primary region")
    }

    func testCheapestPoolFirstWithinARegion() {
        let region = inv(mkRegion("r", primary: true), [
            cpuPool("c-big", "r", cpu: 8, memoryGiB: 32, capacity: 5, price: 0.8),
            cpuPool("c-small", "r", cpu: 2, memoryGiB: 4, capacity: 1, price: 0.1),
            cpuPool("c-mid-b", "r", cpu: 4, memoryGiB: 8, capacity: 1, price: 0.3),
            cpuPool("c-mid-a", "r", cpu: 4, memoryGiB: 8, capacity: 1, price: 0.3),
            cpuPool("c-tiny", "r", cpu: 1, memoryGiB: 2, capacity: 9, price: 0.01),
            cpuPool("perf", "r", computeClass: .performance, cpu: 8, memoryGiB: 32, price: 0.01),
        ])
        XCTAssertEqual(PlacementPlanner.candidatePools(cpuShape, in: region).map(\.pool.id), ["c-small", "c-mid-a", "c-mid-b", "c-big"])
        let plan = PlacementPlanner.plan(PlacementInput(shape: cpuShape, replicas: 4, inventory: [region]))
        XCTAssertEqual(plan.placements.map(\.poolId), ["c-small", "c-mid-a", "c-mid-b", "c-big"])
        XCTAssertEqual(plan.placements.map(\.count), [1, 1, 1, 1])
    }

    func testShapeMustFitGPUsCPUAndMemory() {
        let shape = ComputeShape(computeClass: .gpu, gpuSeries: ["A10"], gpuCount: 2, cpu: 16, memoryGiB: 64)
        let region = inv(mkRegion("r", primary: true), [
            gpuPool("one-gpu", "r", series: "A10", gpus: 1, cpu: 32, memoryGiB: 128),
            gpuPool("few-cpu", "r", series: "A10", gpus: 2, cpu: 8, memoryGiB: 128),
            gpuPool("few-mem", "r", series: "A10", gpus: 2, cpu: 32, memoryGiB: 32),
            gpuPool("fits", "r", series: "A10", gpus: 2, cpu: 16, memoryGiB: 64),
            gpuPool("bigger", "r", series: "A10", gpus: 4, cpu: 64, memoryGiB: 256, price: 3),
        ])
        XCTAssertEqual(PlacementPlanner.candidatePools(shape, in: region).map(\.pool.id), ["fits", "bigger"])
    }

    func testBestEffortQoSFilter() {
        let region = inv(mkRegion("r", primary: true), [
            cpuPool("default-only", "r", price: 0.1, qos: [.default]),
            cpuPool("be-only", "r", price: 0.2, qos: [.bestEffort]),
            cpuPool("both", "r", price: 0.3),
        ])
        var be = cpuShape
        be.qos = .bestEffort
        XCTAssertEqual(PlacementPlanner.candidatePools(be, in: region).map(\.pool.id), ["be-only", "both"])
        XCTAssertEqual(PlacementPlanner.candidatePools(cpuShape, in: region).map(\.pool.id), ["default-only", "both"])
        let plan = PlacementPlanner.plan(PlacementInput(shape: be, replicas: 12, allOrNothing: false, inventory: [region]))
        XCTAssertEqual(plan.placements.map(\.poolId), ["be-only", "both"])
        XCTAssertEqual(plan.placed, 20 - 8)
    }

    func testInstanceTypeFilter() {
        let region = inv(mkRegion("r", primary: true), [
            gpuPool("cheap", "r", type: "ecs.gn6i-c4g1.xlarge", price: 0.5),
            gpuPool("wanted", "r", type: "ecs.gn7i-c8g1.2xlarge", capacity: 2, price: 2),
        ])
        var shape = t4Shape
        shape.instanceType = "ecs.gn7i-c8g1.2xlarge"
        XCTAssertEqual(PlacementPlanner.candidatePools(shape, in: region).map(\.pool.id), ["wanted"])
        let plan = PlacementPlanner.plan(PlacementInput(shape: shape, replicas: 3, inventory: [region]))
        XCTAssertEqual(plan.placed, 0, "all-or-nothing: only 2 of that type")
        shape.instanceType = "ecs.none"
        XCTAssertEqual(PlacementPlanner.candidatePools(shape, in: region), [])
    }

    func testModelMemoryFilterCheapestFirst() {
        let region = inv(mkRegion("r", primary: true), [
            gpuPool("p4", "r", series: "P4", memory: 8, price: 0.2),
            gpuPool("a10", "r", series: "A10", memory: 24, price: 1.5),
            gpuPool("t4", "r", series: "T4", memory: 16, price: 0.8),
            gpuPool("l20", "r", series: "L20", memory: 48, price: 1.5),
            gpuPool("nomem", "r", series: "X", memory: 0, price: 0.01),
        ])
        let shape = ComputeShape(computeClass: .gpu, gpuCount: 1, cpu: 4, memoryGiB: 16, requiredGPUMemoryGiB: 14.5)
        XCTAssertEqual(PlacementPlanner.candidatePools(shape, in: region).map(\.pool.id), ["t4", "a10", "l20"])
        let big = ComputeShape(computeClass: .gpu, gpuCount: 1, cpu: 4, memoryGiB: 16, requiredGPUMemoryGiB: 30)
        XCTAssertEqual(PlacementPlanner.candidatePools(big, in: region).map(\.pool.id), ["l20"])
        // Two GPUs of 16 GiB cover 30 GiB, on pools with at least two GPUs per instance.
        let two = ComputeShape(computeClass: .gpu, gpuCount: 2, cpu: 4, memoryGiB: 16, requiredGPUMemoryGiB: 30)
        let region2 = inv(mkRegion("r", primary: true), [
            gpuPool("t4x1", "r", series: "T4", memory: 16, gpus: 1, price: 0.1),
            gpuPool("t4x2", "r", series: "T4", memory: 16, gpus: 2, price: 1.6),
            gpuPool("a10x2", "r", series: "A10", memory: 24, gpus: 2, price: 3),
        ])
        XCTAssertEqual(PlacementPlanner.candidatePools(two, in: region2).map(\.pool.id), ["t4x2", "a10x2"])
        // A series list together with a memory need: both apply, the list order wins.
        let both = ComputeShape(computeClass: .gpu, gpuSeries: ["L20", "A10", "P4"], gpuCount: 1, cpu: 4, memoryGiB: 16, requiredGPUMemoryGiB: 14)
        XCTAssertEqual(PlacementPlanner.candidatePools(both, in: region).map(\.pool.id), ["l20", "a10"])
    }

    func testGrantableCountsIdleAndNeverOvercommits() {
        let region = inv(mkRegion("r", primary: true), [
            cpuPool("over", "r", capacity: 10, price: 0.01, allocated: 12, idle: 2),
            cpuPool("full", "r", capacity: 4, price: 0.02, allocated: 4, idle: 1),
            cpuPool("some", "r", capacity: 4, price: 0.03, allocated: 2, idle: 1),
        ])
        XCTAssertEqual(PlacementPlanner.replicasAvailable(cpuShape, in: region), 2 + 1 + 3)
        let plan = PlacementPlanner.plan(PlacementInput(shape: cpuShape, replicas: 10, allOrNothing: false, inventory: [region]))
        XCTAssertEqual(plan.placements.map(\.poolId), ["over", "full", "some"])
        XCTAssertEqual(plan.placements.map(\.count), [2, 1, 3])
        XCTAssertEqual(plan.decisions[0].reason, "general-purpose: 6 of 18 available; primary region")
    }

    func testZeroReplicasPlansNothing() {
        let region = inv(mkRegion("r", primary: true), [cpuPool("c", "r")])
        for n in [0, -3] {
            let plan = PlacementPlanner.plan(PlacementInput(shape: cpuShape, replicas: n, inventory: [region]))
            XCTAssertEqual(plan, PlacementPlan(placements: [], decisions: [], placed: 0, satisfied: true))
        }
    }

    // MARK: Prefer: units

    /// ResourcePolicy seed: on-premises first (max 3), then serverless; scale 2 → 4 → 2.
    func testOnPremisesUnitThenServerlessScaleOutAndIn() {
        let idc = mkRegion("idc-shanghai", kind: .onPremises)
        let inventory = [
            inv(mkRegion("cn-hangzhou", primary: true), [cpuPool("hz-c2", "cn-hangzhou", capacity: 100)]),
            inv(idc, [cpuPool("idc-c2", "idc-shanghai", capacity: 10, price: 0)]),
        ]
        let policy = PlacementPolicy(strategy: .prefer, units: [
            PlacementUnit(regions: ["idc-shanghai"], max: 3),
            PlacementUnit(regions: ["*"]),
        ])
        let first = PlacementPlanner.plan(PlacementInput(shape: cpuShape, replicas: 2, policy: policy, inventory: inventory))
        XCTAssertEqual(first.placements, [PlannedPlacement(region: "idc-shanghai", poolId: "idc-c2", count: 2, unit: 0)])
        XCTAssertEqual(first.decisions.count, 1)
        XCTAssertEqual(first.decisions[0].reason, "general-purpose: 10 of 10 available; unit 0")

        // Scale 2 → 4: the two held replicas count against unit 0's max.
        var after = inventory
        after[1].pools[0].allocated = 2
        let scaleOut = PlacementPlanner.plan(PlacementInput(
            shape: cpuShape, replicas: 2, policy: policy,
            held: [HeldReplicas(region: "idc-shanghai", unit: 0, count: 2)], inventory: after))
        XCTAssertTrue(scaleOut.satisfied)
        XCTAssertEqual(scaleOut.placements, [
            PlannedPlacement(region: "idc-shanghai", poolId: "idc-c2", count: 1, unit: 0),
            PlannedPlacement(region: "cn-hangzhou", poolId: "hz-c2", count: 1, unit: 1),
        ])
        XCTAssertEqual(scaleOut.decisions.map(\.region), ["idc-shanghai", "cn-hangzhou"])
        XCTAssertTrue(scaleOut.decisions[0].reason.contains("unit 0 max 3 reached"), scaleOut.decisions[0].reason)
        XCTAssertTrue(scaleOut.decisions[1].reason.contains("unit 1"))
        XCTAssertTrue(scaleOut.decisions[1].reason.contains("primary region"))

        // Scale 4 → 2: the serverless one goes first, then the newest on-premises one.
        let instances = [
            ScaleInSelector.HeldInstance(id: "i-1", unit: 0, sequence: 1),
            ScaleInSelector.HeldInstance(id: "i-2", unit: 0, sequence: 2),
            ScaleInSelector.HeldInstance(id: "i-3", unit: 0, sequence: 3),
            ScaleInSelector.HeldInstance(id: "i-4", unit: 1, sequence: 4),
        ]
        XCTAssertEqual(ScaleInSelector.select(instances, releasing: 2), ["i-4", "i-3"])

        // Already at the unit's max: the on-premises region is reported, nothing goes there.
        var full = inventory
        full[1].pools[0].allocated = 3
        let atMax = PlacementPlanner.plan(PlacementInput(
            shape: cpuShape, replicas: 2, policy: policy,
            held: [HeldReplicas(region: "idc-shanghai", unit: 0, count: 3)], inventory: full))
        XCTAssertEqual(atMax.placements, [PlannedPlacement(region: "cn-hangzhou", poolId: "hz-c2", count: 2, unit: 1)])
        XCTAssertEqual(atMax.decisions[0].region, "idc-shanghai")
        XCTAssertEqual(atMax.decisions[0].replicas, 0)
        XCTAssertTrue(atMax.decisions[0].reason.hasPrefix("unit 0 max 3 reached (3 held)"), atMax.decisions[0].reason)
    }

    /// CTyun seed: units pin one replica to region A and two to region B.
    func testUnitsPinReplicaCountsPerRegion() {
        let inventory = [
            inv(mkRegion("region-a", primary: true), [cpuPool("a", "region-a")]),
            inv(mkRegion("region-b"), [cpuPool("b", "region-b")]),
            inv(mkRegion("region-c"), [cpuPool("c", "region-c", price: 0.001)]),
        ]
        let policy = PlacementPolicy(strategy: .prefer, units: [
            PlacementUnit(regions: ["region-a"], max: 1),
            PlacementUnit(regions: ["region-b"], max: 2),
        ])
        let plan = PlacementPlanner.plan(PlacementInput(shape: cpuShape, replicas: 3, policy: policy, inventory: inventory))
        XCTAssertEqual(plan.placements, [
            PlannedPlacement(region: "region-a", poolId: "a", count: 1, unit: 0),
            PlannedPlacement(region: "region-b", poolId: "b", count: 2, unit: 1),
        ])
        XCTAssertTrue(plan.satisfied)
        let four = PlacementPlanner.plan(PlacementInput(shape: cpuShape, replicas: 4, policy: policy, inventory: inventory))
        XCTAssertEqual(four.placed, 0)
        XCTAssertFalse(four.satisfied)
        XCTAssertEqual(four.decisionRegions, ["region-a", "region-b"], "region-c is in no unit")
        let partial = PlacementPlanner.plan(PlacementInput(shape: cpuShape, replicas: 4, policy: policy, allOrNothing: false, inventory: inventory))
        XCTAssertEqual(partial.placed, 3)
        XCTAssertEqual(partial.byRegion, ["region-a": 1, "region-b": 2])
    }

    func testStarTakesEveryActiveRegionNotNamedEarlierInDefaultOrder() {
        let inventory = [
            inv(mkRegion("z", primary: true), [cpuPool("z", "z", capacity: 1)]),
            inv(mkRegion("y"), [cpuPool("y", "y", capacity: 1, price: 0.05)]),
            inv(mkRegion("x"), [cpuPool("x", "x", capacity: 1, price: 0.5)]),
            inv(mkRegion("w", state: .cordoned), [cpuPool("w", "w", capacity: 1)]),
        ]
        let policy = PlacementPolicy(strategy: .prefer, units: [
            PlacementUnit(regions: ["x"]),
            PlacementUnit(regions: ["*"]),
            PlacementUnit(regions: ["x", "y"]),  // all already used by earlier units
        ])
        let plan = PlacementPlanner.plan(PlacementInput(shape: cpuShape, replicas: 4, policy: policy, allOrNothing: false, inventory: inventory))
        XCTAssertEqual(plan.placements, [
            PlannedPlacement(region: "x", poolId: "x", count: 1, unit: 0),
            PlannedPlacement(region: "z", poolId: "z", count: 1, unit: 1),
            PlannedPlacement(region: "y", poolId: "y", count: 1, unit: 1),
        ])
        XCTAssertEqual(plan.decisionRegions, ["x", "w", "z", "y"], "each region once, by the first unit that names it")
        XCTAssertEqual(plan.decision("w")?.reason, "cordoned; unit 1")
    }

    func testRegionInSeveralUnitsIsUsedByTheFirstOnly() {
        let inventory = [
            inv(mkRegion("a", primary: true), [cpuPool("a", "a", capacity: 5)]),
            inv(mkRegion("b"), [cpuPool("b", "b", capacity: 5)]),
        ]
        let policy = PlacementPolicy(strategy: .prefer, units: [
            PlacementUnit(regions: ["b"], max: 1),
            PlacementUnit(regions: ["a", "b"]),
        ])
        let plan = PlacementPlanner.plan(PlacementInput(shape: cpuShape, replicas: 4, policy: policy, inventory: inventory))
        XCTAssertEqual(plan.placements, [
            PlannedPlacement(region: "b", poolId: "b", count: 1, unit: 0),
            PlannedPlacement(region: "a", poolId: "a", count: 3, unit: 1),
        ])
        XCTAssertEqual(plan.decisionRegions, ["b", "a"])
    }

    func testSelectorMatchesKindAndLabels() {
        let inventory = [
            inv(mkRegion("cloud", primary: true), [cpuPool("c", "cloud")]),
            inv(mkRegion("idc-1", kind: .onPremises, labels: ["site": "sh", "tier": "gold"]), [cpuPool("i1", "idc-1", capacity: 1)]),
            inv(mkRegion("idc-2", kind: .onPremises, labels: ["site": "sh"]), [cpuPool("i2", "idc-2", capacity: 1)]),
            inv(mkRegion("cloud-gold", labels: ["tier": "gold"]), [cpuPool("cg", "cloud-gold", capacity: 1)]),
        ]
        let onPrem = PlacementPolicy(strategy: .prefer, units: [
            PlacementUnit(selector: RegionSelector(kind: .onPremises)),
            PlacementUnit(regions: ["*"]),
        ])
        let p1 = PlacementPlanner.plan(PlacementInput(shape: cpuShape, replicas: 3, policy: onPrem, inventory: inventory))
        XCTAssertEqual(p1.placements.map(\.region), ["idc-1", "idc-2", "cloud"])
        XCTAssertEqual(p1.placements.map(\.unit), [0, 0, 1])

        let gold = PlacementPolicy(strategy: .prefer, units: [PlacementUnit(selector: RegionSelector(labels: ["tier": "gold"]))])
        let p2 = PlacementPlanner.plan(PlacementInput(shape: cpuShape, replicas: 2, policy: gold, inventory: inventory))
        XCTAssertEqual(Set(p2.placements.map(\.region)), ["idc-1", "cloud-gold"])

        let goldIDC = PlacementPolicy(strategy: .prefer, units: [
            PlacementUnit(selector: RegionSelector(kind: .onPremises, labels: ["tier": "gold", "site": "sh"])),
        ])
        let p3 = PlacementPlanner.plan(PlacementInput(shape: cpuShape, replicas: 2, policy: goldIDC, allOrNothing: false, inventory: inventory))
        XCTAssertEqual(p3.placements, [PlannedPlacement(region: "idc-1", poolId: "i1", count: 1, unit: 0)])

        // Ids and a selector together: the listed regions that match.
        let both = PlacementPolicy(strategy: .prefer, units: [
            PlacementUnit(regions: ["cloud", "idc-2"], selector: RegionSelector(kind: .onPremises)),
        ])
        let p4 = PlacementPlanner.plan(PlacementInput(shape: cpuShape, replicas: 1, policy: both, inventory: inventory))
        XCTAssertEqual(p4.placements.map(\.region), ["idc-2"])
        XCTAssertEqual(p4.decisionRegions, ["idc-2"])
    }

    func testUnknownRegionInAUnitIsReported() {
        let inventory = [inv(mkRegion("a", primary: true), [cpuPool("a", "a")])]
        let policy = PlacementPolicy(units: [PlacementUnit(regions: ["nowhere", "a"])])
        let plan = PlacementPlanner.plan(PlacementInput(shape: cpuShape, replicas: 1, policy: policy, inventory: inventory))
        XCTAssertEqual(plan.decisions[0], PlacementDecision(region: "nowhere", replicas: 0, reason: "unknown region; unit 0"))
        XCTAssertEqual(plan.placements, [PlannedPlacement(region: "a", poolId: "a", count: 1, unit: 0)])
    }

    func testPreferWithoutUnitsIsTheDefaultPolicy() {
        let inventory = [
            inv(mkRegion("a"), [cpuPool("a", "a", capacity: 1)]),
            inv(mkRegion("b", primary: true), [cpuPool("b", "b", capacity: 1)]),
        ]
        let a = PlacementPlanner.plan(PlacementInput(shape: cpuShape, replicas: 2, policy: PlacementPolicy(), inventory: inventory))
        let b = PlacementPlanner.plan(PlacementInput(shape: cpuShape, replicas: 2, policy: nil, inventory: inventory))
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.placements.map(\.region), ["b", "a"])
        XCTAssertEqual(a.placements.map(\.unit), [nil, nil])
    }

    // MARK: Spread

    func testLargestRemainder() {
        XCTAssertEqual(PlacementPlanner.largestRemainder(4, [2, 2]), [2, 2])
        XCTAssertEqual(PlacementPlanner.largestRemainder(8, [30, 10]), [6, 2])
        XCTAssertEqual(PlacementPlanner.largestRemainder(3, [1, 1, 1]), [1, 1, 1])
        XCTAssertEqual(PlacementPlanner.largestRemainder(5, [10, 10]), [3, 2])
        XCTAssertEqual(PlacementPlanner.largestRemainder(5, [0, 10, 10]), [0, 3, 2])
        XCTAssertEqual(PlacementPlanner.largestRemainder(9, [3, 2]), [3, 2])
        XCTAssertEqual(PlacementPlanner.largestRemainder(1, [1, 1, 1]), [1, 0, 0])
        XCTAssertEqual(PlacementPlanner.largestRemainder(2, [1, 3, 3]), [0, 1, 1])
        XCTAssertEqual(PlacementPlanner.largestRemainder(0, [1, 3]), [0, 0])
        XCTAssertEqual(PlacementPlanner.largestRemainder(3, []), [])
        XCTAssertEqual(PlacementPlanner.largestRemainder(7, [-1, 7]), [0, 7])
    }

    private func spreadInventory(_ caps: [Int]) -> [RegionInventory] {
        caps.enumerated().map { i, cap in
            inv(mkRegion("r\(i)", primary: i == 0), [gpuPool("p\(i)", "r\(i)", capacity: cap)])
        }
    }

    private func spread(_ replicas: Int, _ caps: [Int], allOrNothing: Bool = true) -> PlacementPlan {
        let inventory = spreadInventory(caps)
        let policy = PlacementPolicy(strategy: .spread, units: [PlacementUnit(regions: inventory.map(\.region.id))])
        return PlacementPlanner.plan(PlacementInput(shape: t4Shape, replicas: replicas, policy: policy, allOrNothing: allOrNothing, inventory: inventory))
    }

    func testSpreadDividesByAvailableInventory() {
        // Fleet seed: four replicas over two clusters.
        let four = spread(4, [2, 2])
        XCTAssertEqual(four.placements.map(\.count), [2, 2])
        XCTAssertEqual(four.placements.map(\.region), ["r0", "r1"])
        XCTAssertTrue(four.satisfied)
        XCTAssertEqual(spread(8, [30, 10]).placements.map(\.count), [6, 2])
        XCTAssertEqual(spread(3, [1, 1, 1]).placements.map(\.count), [1, 1, 1])
        XCTAssertEqual(spread(5, [10, 10]).placements.map(\.count), [3, 2])
        let zero = spread(5, [10, 0, 10])
        XCTAssertEqual(zero.byRegion, ["r0": 3, "r2": 2])
        XCTAssertEqual(zero.decision("r1")?.replicas, 0)
        XCTAssertTrue(zero.decision("r1")!.reason.hasPrefix("T4: 0 of 0 available"), zero.decision("r1")!.reason)
        XCTAssertEqual(spread(6, [3, 2], allOrNothing: true).placed, 0)
        XCTAssertEqual(spread(6, [3, 2], allOrNothing: false).placements.map(\.count), [3, 2])
        let plan = spread(4, [2, 2])
        XCTAssertEqual(plan.decisions.count, 2)
        XCTAssertTrue(plan.decisions[0].reason.contains("spread share 2 of 4"), plan.decisions[0].reason)
        XCTAssertTrue(plan.decisions[0].reason.contains("unit 0"))
    }

    func testSpreadWithoutUnitsUsesDefaultOrder() {
        let inventory = [
            inv(mkRegion("b"), [gpuPool("b", "b", capacity: 10, price: 1)]),
            inv(mkRegion("a"), [gpuPool("a", "a", capacity: 10, price: 1)]),
            inv(mkRegion("p", primary: true), [gpuPool("p", "p", capacity: 10, price: 5)]),
        ]
        let plan = PlacementPlanner.plan(PlacementInput(shape: t4Shape, replicas: 4, policy: PlacementPolicy(strategy: .spread), inventory: inventory))
        // 4 over 10,10,10 = 1.33 each: the extra one goes to the first in the default order (p).
        XCTAssertEqual(plan.placements.map(\.region), ["p", "a", "b"])
        XCTAssertEqual(plan.placements.map(\.count), [2, 1, 1])
        XCTAssertEqual(plan.placements.map(\.unit), [nil, nil, nil])
    }

    func testSpreadRespectsUnitMax() {
        let inventory = spreadInventory([30, 10, 10])
        let policy = PlacementPolicy(strategy: .spread, units: [
            PlacementUnit(regions: ["r0"], max: 2),
            PlacementUnit(regions: ["r1", "r2"]),
        ])
        let plan = PlacementPlanner.plan(PlacementInput(shape: t4Shape, replicas: 10, policy: policy, inventory: inventory))
        XCTAssertTrue(plan.satisfied)
        XCTAssertEqual(plan.byRegion, ["r0": 2, "r1": 4, "r2": 4])
        XCTAssertEqual(plan.placements.map(\.unit), [0, 1, 1])
        XCTAssertTrue(plan.decision("r0")!.reason.contains("unit 0 max 2 reached"), plan.decision("r0")!.reason)
    }

    func testSpreadWithHeldReplicasFillsRegionsBelowTheirShare() {
        // Held 2 in r0 (which can hold 2 + 10), r1 can hold 10. Total 4 → shares 2/2: both new ones go to r1.
        var inventory = spreadInventory([12, 10])
        inventory[0].pools[0].allocated = 2
        let policy = PlacementPolicy(strategy: .spread, units: [PlacementUnit(regions: ["r0", "r1"])])
        let plan = PlacementPlanner.plan(PlacementInput(
            shape: t4Shape, replicas: 2, policy: policy, held: [HeldReplicas(region: "r0", unit: 0, count: 2)], inventory: inventory))
        XCTAssertEqual(plan.placements, [PlannedPlacement(region: "r1", poolId: "p1", count: 2, unit: 0)])
        XCTAssertTrue(plan.decision("r0")!.reason.contains("(2 held)"))

        // Held above the share somewhere: the new ones still all get placed.
        var skewed = spreadInventory([10, 10])
        skewed[0].pools[0].allocated = 6
        let more = PlacementPlanner.plan(PlacementInput(
            shape: t4Shape, replicas: 3, policy: policy, held: [HeldReplicas(region: "r0", unit: 0, count: 6)], inventory: skewed))
        XCTAssertTrue(more.satisfied)
        XCTAssertEqual(more.byRegion, ["r1": 3])
    }

    func testSpreadHeldCountsAgainstUnitMaxAndFallsBackWhenShort() {
        var inventory = spreadInventory([10, 10])
        inventory[0].pools[0].allocated = 3
        let policy = PlacementPolicy(strategy: .spread, units: [
            PlacementUnit(regions: ["r0"], max: 3),
            PlacementUnit(regions: ["r1"]),
        ])
        let plan = PlacementPlanner.plan(PlacementInput(
            shape: t4Shape, replicas: 4, policy: policy, held: [HeldReplicas(region: "r0", unit: 0, count: 3)], inventory: inventory))
        XCTAssertTrue(plan.satisfied)
        XCTAssertEqual(plan.byRegion, ["r1": 4])

        // 9 over 1, 20, 1: 0.41 / 8.18 / 0.41 → floors 0/8/0, the one left to the first largest remainder.
        let small = spread(9, [1, 20, 1])
        XCTAssertTrue(small.satisfied)
        XCTAssertEqual(small.byRegion, ["r0": 1, "r1": 8])
    }

    func testSpreadSkipsCordonedAndReportsThem() {
        var inventory = spreadInventory([5, 5, 5])
        inventory[1].region.state = .cordoned
        let policy = PlacementPolicy(strategy: .spread, units: [PlacementUnit(regions: ["r0", "r1", "r2"])])
        let plan = PlacementPlanner.plan(PlacementInput(shape: t4Shape, replicas: 4, policy: policy, inventory: inventory))
        XCTAssertEqual(plan.byRegion, ["r0": 2, "r2": 2])
        XCTAssertEqual(plan.decisionRegions, ["r0", "r1", "r2"])
        XCTAssertEqual(plan.decision("r1")?.reason, "cordoned; unit 0")
    }

    // MARK: Determinism

    func testSameInputSamePlanRegardlessOfInventoryOrder() {
        let inventory = [
            inv(mkRegion("a"), [cpuPool("a2", "a", price: 0.1), cpuPool("a1", "a", price: 0.1)]),
            inv(mkRegion("b"), [cpuPool("b1", "b", price: 0.1)]),
            inv(mkRegion("c", primary: true), [cpuPool("c1", "c", capacity: 1)]),
        ]
        let input = PlacementInput(shape: cpuShape, replicas: 25, allOrNothing: false, inventory: inventory)
        let plan = PlacementPlanner.plan(input)
        var reversed = input
        reversed.inventory = inventory.reversed().map { RegionInventory(region: $0.region, pools: $0.pools.reversed()) }
        XCTAssertEqual(PlacementPlanner.plan(reversed), plan)
        XCTAssertEqual(plan.placements.map(\.poolId), ["c1", "a1", "a2", "b1"])
        XCTAssertEqual(plan.placements.map(\.count), [1, 10, 10, 4])
    }
}
