import JSON
import XCTest
@testable import BrokerCore

/// `maxPricePerHour` and the `cheapest` strategy, on plain values.
final class PriceCapPlacementTests: XCTestCase {
    let inventory = [
        inv(mkRegion("a", primary: true), [gpuPool("a-t4", "a", capacity: 2, price: 3)]),
        inv(mkRegion("b"), [gpuPool("b-t4", "b", capacity: 2, price: 1), gpuPool("b-t4x", "b", capacity: 5, price: 2.5)]),
        inv(mkRegion("c"), [gpuPool("c-t4", "c", capacity: 3, price: 2)]),
        inv(mkRegion("d"), [gpuPool("d-t4", "d", capacity: 1, price: 1)]),
    ]

    func plan(_ replicas: Int, cap: Double? = nil, region: String? = nil, policy: PlacementPolicy? = nil,
              allOrNothing: Bool = true) -> PlacementPlan {
        var shape = t4Shape
        shape.maxPricePerHour = cap
        return PlacementPlanner.plan(PlacementInput(
            shape: shape, replicas: replicas, pinnedRegion: region, policy: policy, allOrNothing: allOrNothing,
            inventory: inventory))
    }

    func testNoPoolAboveTheCapIsUsedAndTheDecisionsSaySo() {
        let capped = plan(5, cap: 2, allOrNothing: false)
        XCTAssertEqual(capped.byRegion, ["b": 2, "d": 1, "c": 2], "a (3/h) and b's 2.5/h pool are above the cap")
        XCTAssertEqual(
            capped.decision("a")?.reason,
            "skipped for price: the cheapest fitting pool costs 3/h, above maxPricePerHour 2; primary region")
        XCTAssertEqual(capped.decision("b")?.reason, "T4: 2 of 2 available; 1 pool above maxPricePerHour 2 skipped")
        XCTAssertEqual(plan(5).byRegion, ["a": 2, "b": 3], "without a cap: primary first, then the cheapest region")
    }

    func testAPinnedRegionOverTheCapPlacesNothingAndSaysWhy() {
        let pinned = plan(1, cap: 2, region: "a")
        XCTAssertEqual(pinned.placed, 0)
        XCTAssertEqual(
            pinned.decisions,
            [PlacementDecision(region: "a", replicas: 0,
                               reason: "skipped for price: the cheapest fitting pool costs 3/h, above maxPricePerHour 2; pinned region, no fallback")])
    }

    func testCheapestAloneOrdersRegionsByPriceThenPrimaryThenFreeReplicas() {
        let capped = plan(3, cap: 2, policy: PlacementPolicy(strategy: .cheapest))
        XCTAssertEqual(capped.decisionRegions, ["b", "d"], "1/h: b (2 free) before d (1 free); the primary a costs 3/h")
        XCTAssertEqual(capped.byRegion, ["b": 2, "d": 1])
        // A region is ranked by the pool that would serve; once chosen, it gives what it has.
        let whole = plan(6, policy: PlacementPolicy(strategy: .cheapest))
        XCTAssertEqual(whole.placements.map(\.poolId), ["b-t4", "b-t4x"])
        // Equal prices: the primary first.
        let tied = [
            inv(mkRegion("x"), [gpuPool("x-t4", "x", capacity: 9, price: 1)]),
            inv(mkRegion("y", primary: true), [gpuPool("y-t4", "y", capacity: 1, price: 1)]),
        ]
        let plan = PlacementPlanner.plan(PlacementInput(
            shape: t4Shape, replicas: 2, policy: PlacementPolicy(strategy: .cheapest), inventory: tied))
        XCTAssertEqual(plan.decisionRegions, ["y", "x"])
        XCTAssertEqual(PlacementPlanner.priceRegionOrder(t4Shape, inventory).map(\.region.id), ["b", "d", "c", "a"])
    }

    func testCheapestInsideUnitsOrdersEachUnitByPrice() {
        let units = [PlacementUnit(regions: ["a", "c"], max: 2), PlacementUnit(regions: ["*"])]
        let cheapest = plan(4, policy: PlacementPolicy(strategy: .cheapest, units: units))
        XCTAssertEqual(cheapest.decisionRegions, ["c", "a", "b"], "unit 0 by price: c (2/h) before a (3/h); unit 1: b")
        XCTAssertEqual(cheapest.byRegion, ["c": 2, "b": 2])
        XCTAssertEqual(plan(4, policy: PlacementPolicy(strategy: .prefer, units: units)).byRegion, ["a": 2, "b": 2])
    }

    func testAPolicysCapAndTheRequestsCombineToTheLower() {
        var request = AllocationRequest(shape: t4Shape, replicas: 1)
        request.placement = PlacementPolicy(units: [PlacementUnit(regions: ["*"])], maxPricePerHour: 1)
        XCTAssertEqual(GrantPlanner.effectiveShape(request).maxPricePerHour, 1)
        request.shape.maxPricePerHour = 0.5
        XCTAssertEqual(GrantPlanner.effectiveShape(request).maxPricePerHour, 0.5)
        request.placement?.maxPricePerHour = nil
        XCTAssertEqual(GrantPlanner.effectiveShape(request).maxPricePerHour, 0.5)
    }

    func testParsingCapsAndCheapestWithoutUnits() throws {
        let base: [String: JSONValue] = ["computeClass": "gpu", "gpuSeries": ["T4"], "cpu": 4, "memoryGiB": 16]
        var body = base
        body["maxPricePerHour"] = 2.5
        body["placement"] = ["strategy": "cheapest", "maxPricePerHour": 2]
        let request = try AllocationRequest.parse(.object(body))
        XCTAssertEqual(request.shape.maxPricePerHour, 2.5)
        XCTAssertEqual(request.placement, PlacementPolicy(strategy: .cheapest, units: [], maxPricePerHour: 2))
        for (key, value, field) in [("maxPricePerHour", JSONValue.number(-1), "maxPricePerHour"),
                                    ("maxPricePerHour", "cheap", "maxPricePerHour"),
                                    ("placement", ["strategy": "prefer"], "placement.units"),
                                    ("placement", ["strategy": "cheapest", "maxPricePerHour": -2], "placement.maxPricePerHour")] {
            var bad = base
            bad[key] = value
            XCTAssertThrowsError(try AllocationRequest.parse(.object(bad))) { error in
                XCTAssertEqual((error as? ValidationFailure)?.errors.map(\.field), [field], "\(key): \(value)")
            }
        }
        let named = try PolicySpec.parse(["strategy": "cheapest", "maxPricePerHour": 1.5], name: "cheap")
        XCTAssertEqual(named.policy, PlacementPolicy(strategy: .cheapest, maxPricePerHour: 1.5))
    }
}
