import XCTest
@testable import BrokerCore

final class ScaleInSelectorTests: XCTestCase {
    typealias H = ScaleInSelector.HeldInstance

    func testLastUnitFirstNewestFirstWithinAUnit() {
        let instances = [
            H(id: "a", unit: 0, sequence: 10), H(id: "b", unit: 1, sequence: 1), H(id: "c", unit: 2, sequence: 2),
            H(id: "d", unit: 1, sequence: 5), H(id: "e", unit: 0, sequence: 11), H(id: "f", unit: 2, sequence: 3),
        ]
        XCTAssertEqual(ScaleInSelector.select(instances, releasing: 6), ["f", "c", "d", "b", "e", "a"])
        XCTAssertEqual(ScaleInSelector.select(instances, releasing: 3), ["f", "c", "d"])
        XCTAssertEqual(ScaleInSelector.select(instances, releasing: 1), ["f"])
    }

    func testDefaultPolicyNewestFirst() {
        let instances = [H(id: "x", unit: nil, sequence: 1), H(id: "y", unit: nil, sequence: 3), H(id: "z", unit: nil, sequence: 2)]
        XCTAssertEqual(ScaleInSelector.select(instances, releasing: 2), ["y", "z"])
    }

    func testNilUnitRanksBelowEveryUnit() {
        let instances = [H(id: "pinned", unit: nil, sequence: 99), H(id: "u0", unit: 0, sequence: 1)]
        XCTAssertEqual(ScaleInSelector.select(instances, releasing: 1), ["u0"])
    }

    func testCountsOutOfRangeAndTies() {
        let instances = [H(id: "a", unit: 0, sequence: 1), H(id: "b", unit: 0, sequence: 1)]
        XCTAssertEqual(ScaleInSelector.select(instances, releasing: 0), [])
        XCTAssertEqual(ScaleInSelector.select(instances, releasing: -1), [])
        XCTAssertEqual(ScaleInSelector.select(instances, releasing: 5), ["b", "a"])
        XCTAssertEqual(ScaleInSelector.select([], releasing: 5), [])
        XCTAssertEqual(ScaleInSelector.select(instances.reversed(), releasing: 2), ["b", "a"], "independent of input order")
    }

    func testDecisionsAfterAScaleInSayWhatWasKeptAndSupersedeTheGrants() {
        let grant = [PlacementDecision(region: "a", replicas: 3, reason: "T4: 3 of 10 available")]
        let first = ScaleInDecisions.after(grant, before: ["a", "a", "a"], after: ["a", "a"], replicas: 2)
        XCTAssertEqual(first, [
            PlacementDecision(region: "a", replicas: 2, reason: "scaled in to 2: kept 2 of 3, released 1 (last unit first, newest first)"),
            PlacementDecision(region: "a", replicas: 3, reason: "superseded by a scale-in: T4: 3 of 10 available"),
        ])
        // Again: the last scale-in's line is replaced, the grant's is not marked twice.
        let second = ScaleInDecisions.after(first, before: ["a", "a"], after: ["a"], replicas: 1)
        XCTAssertEqual(second.map(\.reason), [
            "scaled in to 1: kept 1 of 2, released 1 (last unit first, newest first)",
            "superseded by a scale-in: T4: 3 of 10 available",
        ])
    }
}
