import JSON
import XCTest
@testable import BrokerCore

final class PolicySpecTests: XCTestCase {
    func testParses() throws {
        let policy = try PolicySpec.parse(json("""
        {"selector": {"app": "qwen"}, "strategy": "spread",
         "units": [{"regions": ["idc-shanghai"], "max": 3}, {"selector": {"kind": "serverless"}}]}
        """), name: "qwen-first")
        XCTAssertEqual(policy, NamedPolicy(name: "qwen-first", selector: ["app": "qwen"], policy: PlacementPolicy(
            strategy: .spread, units: [PlacementUnit(regions: ["idc-shanghai"], max: 3),
                                       PlacementUnit(selector: RegionSelector(kind: .serverless))])))
        XCTAssertTrue(policy.matches(labels: ["app": "qwen", "x": "y"]))
        XCTAssertFalse(policy.matches(labels: ["app": "other"]))
        XCTAssertFalse(policy.matches(labels: [:]))
    }

    func testDefaults() throws {
        let policy = try PolicySpec.parse(["units": [["regions": ["*"]]]], name: "0-default")
        XCTAssertEqual(policy.selector, [:])
        XCTAssertEqual(policy.policy.strategy, .prefer)
        XCTAssertTrue(policy.matches(labels: [:]))
    }

    func testName() {
        let body: JSONValue = ["units": [["regions": ["*"]]]]
        for bad in ["", "-a", "A", "a_b", String(repeating: "a", count: 64)] {
            assertError("name", "must match") { try PolicySpec.parse(body, name: bad) }
        }
        XCTAssertNoThrow(try PolicySpec.parse(body, name: String(repeating: "a", count: 63)))
        assertError("name", "path") { try PolicySpec.parse(with(body, "name", "other"), name: "p") }
        XCTAssertNoThrow(try PolicySpec.parse(with(body, "name", "p"), name: "p"))
    }

    func testErrors() {
        assertError("units", "required") { try PolicySpec.parse(["selector": ["a": "b"]], name: "p") }
        assertError("units", "empty") { try PolicySpec.parse(["units": []], name: "p") }
        assertError("selector.a", "string") { try PolicySpec.parse(["selector": ["a": 1], "units": [["regions": ["*"]]]], name: "p") }
        assertError("units[0].selector.labels.k", "63") {
            try PolicySpec.parse(["units": [["selector": ["labels": ["k": .string(String(repeating: "v", count: 64))]]]]], name: "p")
        }
        assertError("priority", "unknown field") { try PolicySpec.parse(["units": [["regions": ["*"]]], "priority": 1], name: "p") }
        XCTAssertEqual(failingFields { try PolicySpec.parse(["strategy": "x", "units": [["max": 0], ["regions": "*"]]], name: "P") },
                       ["name", "strategy", "units[0]", "units[0].max", "units[1].regions"])
    }

    func testStandalonePlacement() throws {
        XCTAssertEqual(try PlacementSpec.parse(["units": [["regions": ["a", "*"]]]]),
                       PlacementPolicy(units: [PlacementUnit(regions: ["a", "*"])]))
        assertError("units[0].regions[0]", "must match") { try PlacementSpec.parse(["units": [["regions": ["**"]]]]) }
    }
}
