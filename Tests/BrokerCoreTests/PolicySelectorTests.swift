import XCTest
@testable import BrokerCore

final class PolicySelectorTests: XCTestCase {
    let prefer = PlacementPolicy(strategy: .prefer, units: [PlacementUnit(regions: ["*"])])
    let spread = PlacementPolicy(strategy: .spread)

    func testMostSpecificMatchWins() {
        let policies = [
            NamedPolicy(name: "catch-all", selector: [:], policy: prefer),
            NamedPolicy(name: "app", selector: ["app": "qwen"], policy: spread),
            NamedPolicy(name: "app-prod", selector: ["app": "qwen", "env": "prod"], policy: prefer),
        ]
        XCTAssertEqual(PolicySelector.select(policies, labels: ["app": "qwen", "env": "prod", "x": "y"])?.name, "app-prod")
        XCTAssertEqual(PolicySelector.select(policies, labels: ["app": "qwen", "env": "dev"])?.name, "app")
        XCTAssertEqual(PolicySelector.select(policies, labels: ["app": "llama"])?.name, "catch-all")
        XCTAssertEqual(PolicySelector.select(policies, labels: [:])?.name, "catch-all")
    }

    func testNoMatch() {
        let policies = [NamedPolicy(name: "app", selector: ["app": "qwen"], policy: spread)]
        XCTAssertNil(PolicySelector.select(policies, labels: ["app": "other"]))
        XCTAssertNil(PolicySelector.select(policies, labels: [:]))
        XCTAssertNil(PolicySelector.select([], labels: ["app": "qwen"]))
    }

    func testTieByName() {
        let policies = [
            NamedPolicy(name: "zeta", selector: ["team": "a"], policy: prefer),
            NamedPolicy(name: "alpha", selector: ["env": "prod"], policy: spread),
            NamedPolicy(name: "beta", selector: ["env": "prod"], policy: prefer),
        ]
        let labels = ["team": "a", "env": "prod"]
        XCTAssertEqual(PolicySelector.select(policies, labels: labels)?.name, "alpha")
        XCTAssertEqual(PolicySelector.select(policies.reversed(), labels: labels)?.name, "alpha")
        XCTAssertEqual(PolicySelector.select([policies[0]] + [NamedPolicy(name: "Zeta", selector: ["team": "a"], policy: prefer)], labels: labels)?.name, "Zeta")
    }

    func testNamedPolicyCodable() throws {
        let named = NamedPolicy(name: "p", selector: ["a": "b"], policy: prefer)
        let data = try JSONEncoder().encode(named)
        XCTAssertEqual(try JSONDecoder().decode(NamedPolicy.self, from: data), named)
    }
}
