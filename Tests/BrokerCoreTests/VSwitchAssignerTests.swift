import XCTest
@testable import BrokerCore

final class VSwitchAssignerTests: XCTestCase {
    func testRoundRobinFromTheStart() {
        XCTAssertEqual(VSwitchAssigner.assign(vSwitchIds: ["a", "b", "c"], alreadyInRegion: 0, count: 5), ["a", "b", "c", "a", "b"])
    }

    func testContinuesAfterTheOnesAlreadyHeld() {
        XCTAssertEqual(VSwitchAssigner.assign(vSwitchIds: ["a", "b", "c"], alreadyInRegion: 2, count: 3), ["c", "a", "b"])
        XCTAssertEqual(VSwitchAssigner.assign(vSwitchIds: ["a", "b", "c"], alreadyInRegion: 7, count: 2), ["b", "c"])
        // Two grants continue exactly like one.
        let one = VSwitchAssigner.assign(vSwitchIds: ["a", "b"], alreadyInRegion: 0, count: 5)
        let split = VSwitchAssigner.assign(vSwitchIds: ["a", "b"], alreadyInRegion: 0, count: 3)
            + VSwitchAssigner.assign(vSwitchIds: ["a", "b"], alreadyInRegion: 3, count: 2)
        XCTAssertEqual(one, split)
    }

    func testEdges() {
        XCTAssertEqual(VSwitchAssigner.assign(vSwitchIds: ["only"], alreadyInRegion: 4, count: 2), ["only", "only"])
        XCTAssertEqual(VSwitchAssigner.assign(vSwitchIds: [], alreadyInRegion: 0, count: 2), [])
        XCTAssertEqual(VSwitchAssigner.assign(vSwitchIds: ["a"], alreadyInRegion: 0, count: 0), [])
        XCTAssertEqual(VSwitchAssigner.assign(vSwitchIds: ["a", "b"], alreadyInRegion: -3, count: 1), ["a"])
    }
}
