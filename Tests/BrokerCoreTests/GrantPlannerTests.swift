import XCTest
@testable import BrokerCore

/// The grant planner on plain values: what it decides, reserves, preempts and leaves to SQL.
final class GrantPlannerTests: XCTestCase {
    let inventory = [
        inv(mkRegion("a", primary: true, vSwitches: ["vsw-1", "vsw-2", "vsw-3"]), [gpuPool("t4", "a", capacity: 3, allocated: 1, idle: 1)]),
        inv(mkRegion("b"), [gpuPool("t4b", "b", capacity: 2, price: 2)]),
    ]

    func request(replicas: Int, qos: QoS = .default, queue: Bool = false, allOrNothing: Bool = true,
                 labels: [String: String] = [:]) -> AllocationRequest {
        var shape = t4Shape
        shape.qos = qos
        return AllocationRequest(shape: shape, replicas: replicas, allOrNothing: allOrNothing, queue: queue, labels: labels)
    }

    func input(
        _ request: AllocationRequest, replicas: Int? = nil, held: [HeldReplicas] = [], policies: [NamedPolicy] = [],
        mayQueue: Bool = false, inventory: [RegionInventory],
        preemptible: [PreemptionCandidate]? = nil
    ) -> GrantInput {
        var input = GrantInput(request: request, replicas: replicas, inventory: inventory)
        (input.held, input.policies, input.mayQueue, input.preemptible) = (held, policies, mayQueue, preemptible)
        return input
    }

    func testGrantRowsCarryVSwitchesRoundRobinAndTheIdleInstancesReused() {
        let plan = GrantPlanner.plan(input(request(replicas: 4), inventory: inventory))
        XCTAssertEqual(plan.outcome, .grant)
        XCTAssertEqual(plan.rows, [
            PlacementRow(placement: PlannedPlacement(region: "a", poolId: "t4", count: 3), vSwitchIds: ["vsw-1", "vsw-2", "vsw-3"], reusing: 1),
            PlacementRow(placement: PlannedPlacement(region: "b", poolId: "t4b", count: 1), vSwitchIds: ["vsw-a"], reusing: 0),
        ])
        XCTAssertEqual(plan.victims, [])
        XCTAssertFalse(plan.wantsPreemptionCandidates)
    }

    func testScaleOutContinuesTheVSwitchRoundRobinAfterWhatIsHeld() {
        let plan = GrantPlanner.plan(input(
            request(replicas: 3), replicas: 2, held: [HeldReplicas(region: "a", count: 2)], inventory: inventory))
        XCTAssertEqual(plan.rows.map(\.vSwitchIds), [["vsw-3", "vsw-1"]])
    }

    func testShortfallQueuesOnlyWhereQueueingIsAllowed() {
        let queued = GrantPlanner.plan(input(request(replicas: 9, qos: .bestEffort, queue: true), mayQueue: true, inventory: inventory))
        XCTAssertEqual(queued.outcome, .queue)
        XCTAssertEqual(queued.rows, [])
        // More than the pools hold in all: the plan says it can never be met.
        XCTAssertEqual(
            queued.shortfall,
            "9 replicas requested, 0 can be placed now; unsatisfiable: 9 replicas requested, but the pools of this shape in any region hold 5 in all")
        let scaled = GrantPlanner.plan(input(request(replicas: 9, qos: .bestEffort, queue: true), inventory: inventory))
        XCTAssertEqual(scaled.outcome, .refuse)
        // A scale-out is judged by what it adds, not by this rule.
        let more = GrantPlanner.plan(input(
            request(replicas: 9, qos: .bestEffort), replicas: 7, held: [HeldReplicas(region: "a", count: 2)], inventory: inventory))
        XCTAssertEqual(more.shortfall, "7 replicas requested, 0 can be placed now")
    }

    func testADefaultQoSShortfallAsksForCandidatesThenPreemptsNewestFirstAsFewAsNeeded() {
        let wanted = request(replicas: 6)
        let first = GrantPlanner.plan(input(wanted, inventory: inventory))
        XCTAssertEqual(first.outcome, .refuse)
        XCTAssertTrue(first.wantsPreemptionCandidates)
        XCTAssertEqual(first.preemptionPools, ["a/t4", "b/t4b"])
        // Best-effort requests never preempt.
        XCTAssertFalse(GrantPlanner.plan(input(request(replicas: 6, qos: .bestEffort), inventory: inventory))
            .wantsPreemptionCandidates)

        let full = [inv(mkRegion("a", primary: true), [gpuPool("t4", "a", capacity: 3, allocated: 3)])]
        let candidates: [PreemptionCandidate] = [(9, "a", "t4"), (7, "a", "t4"), (5, "a", "t4")]
        let plan = GrantPlanner.plan(input(request(replicas: 2), inventory: full, preemptible: candidates))
        XCTAssertEqual(plan.outcome, .grant)
        XCTAssertEqual(plan.victims, [9, 7])
        XCTAssertEqual(plan.rows.map(\.placement.count), [2])
        XCTAssertEqual(plan.decisions.last?.reason, "preempted 2 best-effort instances to make room")
        // Not enough to preempt for all-or-nothing: nothing is taken.
        let short = GrantPlanner.plan(input(request(replicas: 4), inventory: full, preemptible: candidates))
        XCTAssertEqual(short.outcome, .refuse)
        XCTAssertEqual(short.victims, [])
        XCTAssertFalse(short.wantsPreemptionCandidates)
        // Partial grants take every candidate there is.
        let partial = GrantPlanner.plan(input(
            request(replicas: 4, allOrNothing: false), inventory: full, preemptible: candidates))
        XCTAssertEqual(partial.victims, [9, 7, 5])
        XCTAssertEqual(partial.placement.placed, 3)
    }

    func testANamedPolicyMatchingTheLabelsPlacesARequestWithoutOne() {
        let policy = NamedPolicy(
            name: "b-first", selector: ["app": "web"], policy: PlacementPolicy(units: [PlacementUnit(regions: ["b"])]))
        let plan = GrantPlanner.plan(input(
            request(replicas: 1, labels: ["app": "web"]), policies: [policy], inventory: inventory))
        XCTAssertEqual(plan.request.placement, policy.policy)
        XCTAssertEqual(plan.rows.map(\.placement.region), ["b"])
        let other = GrantPlanner.plan(input(request(replicas: 1), policies: [policy], inventory: inventory))
        XCTAssertNil(other.request.placement)
    }

    func testAcceptableAndEffectiveShape() {
        let plan = PlacementPlan(placements: [], decisions: [], placed: 1, satisfied: false)
        XCTAssertFalse(GrantPlanner.acceptable(plan, request(replicas: 2)))
        XCTAssertTrue(GrantPlanner.acceptable(plan, request(replicas: 2, allOrNothing: false)))
        var sized = request(replicas: 1)
        sized.model = ModelSpec(parameters: 7e9, precision: .fp16)
        XCTAssertEqual(
            GrantPlanner.effectiveShape(sized).requiredGPUMemoryGiB, ModelSizing.size(sized.model!).requiredGiB)
        XCTAssertNil(GrantPlanner.effectiveShape(request(replicas: 1)).requiredGPUMemoryGiB)
    }

    func testHeldReplicasCountPerRegionAndUnitInOrderSeen() {
        XCTAssertEqual(
            HeldReplicas.counting([("b", 1), ("a", nil), ("b", 1), ("b", 0)]),
            [HeldReplicas(region: "b", unit: 1, count: 2), HeldReplicas(region: "a", count: 1), HeldReplicas(region: "b", unit: 0, count: 1)])
    }
}
