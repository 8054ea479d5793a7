import BrokerCore
import Foundation
import JSON
import PostgresClient
import TestSupport
import XCTest

/// `maxPricePerHour` and the `cheapest` strategy through the API.
final class PriceCapAPITests: XCTestCase {
    var broker: TestBroker!

    override func setUp() async throws {
        broker = try TestBroker()
        try await broker.region("a", primary: true)
        try await broker.region("b")
        try await broker.region("c")
        try await broker.pool("a", "t4", series: "T4", gpuMemory: 16, capacity: 60, price: 3)
        try await broker.pool("b", "t4", series: "T4", gpuMemory: 16, capacity: 10, price: 1)
        try await broker.pool("c", "t4", series: "T4", gpuMemory: 16, capacity: 10, price: 2)
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    static func t4(_ extra: [String: JSONValue] = [:]) -> JSONValue {
        var body: [String: JSONValue] = ["computeClass": "gpu", "gpuSeries": ["T4"], "cpu": 4, "memoryGiB": 16, "replicas": 1]
        for (key, value) in extra { body[key] = value }
        return .object(body)
    }

    /// 32 clients at once, half capped by the request and half by a named policy, ask for
    /// three times what the pools within the cap hold: every grant lands within the cap.
    func testTheCapIsNeverExceededUnder32ConcurrentClients() async throws {
        let (requestCapped, _) = try await broker.tenant("request-cap")
        let (policyCapped, _) = try await broker.tenant("policy-cap")
        let policy = try await broker.call(
            "PUT", "/v1/policies/cheap", token: policyCapped,
            json: ["strategy": "cheapest", "units": [["regions": ["*"]]], "maxPricePerHour": 2])
        XCTAssertEqual(policy.status, 201, policy.text)
        let broker = self.broker!
        let outcomes = try await withThrowingTaskGroup(of: [(status: Int, body: JSONValue)].self) { group in
            for client in 0..<32 {
                group.addTask {
                    var seen: [(Int, JSONValue)] = []
                    for _ in 0..<2 {
                        let response = client % 2 == 0
                            ? try await broker.call("POST", "/v1/allocations", token: requestCapped, json: Self.t4(["maxPricePerHour": 2]))
                            : try await broker.call("POST", "/v1/allocations", token: policyCapped, json: Self.t4())
                        seen.append((response.status, response.json))
                    }
                    return seen
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        let granted = outcomes.filter { $0.status == 201 }
        let refused = outcomes.filter { $0.status == 409 }
        XCTAssertEqual(granted.count + refused.count, 64, outcomes.map(\.status).description)
        XCTAssertEqual(granted.count, 20, "b and c hold 20 within the cap")
        for grant in granted {
            for instance in grant.body["instances"]!.array {
                XCTAssertNotEqual(instance["region"], "a", "a costs 3/h")
            }
        }
        for refusal in refused {
            XCTAssertEqual(refusal.body["code"], "insufficient_capacity")
            XCTAssertTrue(
                refusal.body["decisions"]!.array.contains { $0["reason"]!.string!.hasPrefix("skipped for price") },
                "\(refusal.body)")
        }
        let inventory = try await broker.call("GET", "/v1/regions/a/inventory", token: broker.adminToken)
        XCTAssertEqual(inventory.json["pools"]?[0]?["allocated"], 0, "nothing above the cap was granted")
        print("price cap: \(granted.count) granted within 2/h, \(refused.count) refused, 0 on the 3/h pool")
        let problems = try await LedgerCheck.run(broker)
        XCTAssertEqual(problems, [])
    }

    func testAPinnedRegionOverTheCapIs409WithTheReason() async throws {
        let (token, _) = try await broker.tenant()
        let pinned = try await broker.call(
            "POST", "/v1/allocations", token: token, json: Self.t4(["region": "a", "maxPricePerHour": 2.5]))
        XCTAssertEqual(pinned.status, 409, pinned.text)
        XCTAssertEqual(pinned.json["code"], "insufficient_capacity")
        XCTAssertEqual(
            pinned.json["decisions"]?[0]?["reason"],
            "skipped for price: the cheapest fitting pool costs 3/h, above maxPricePerHour 2.5; pinned region, no fallback")
        let underCap = try await broker.call(
            "POST", "/v1/allocations", token: token, json: Self.t4(["region": "a", "maxPricePerHour": 3]))
        XCTAssertEqual(underCap.status, 201, "a cap equal to the price admits it")
        XCTAssertEqual(underCap.json["request"]?["shape"]?["maxPricePerHour"], 3)
    }

    func testCheapestStrategyAndInventoryByPrice() async throws {
        let (token, _) = try await broker.tenant()
        let cheapest = try await broker.call(
            "POST", "/v1/allocations", token: token, json: Self.t4(["replicas": 12, "placement": ["strategy": "cheapest"]]))
        XCTAssertEqual(cheapest.status, 201, cheapest.text)
        XCTAssertEqual(cheapest.json["decisions"]!.array.map { $0["region"]!.string! }, ["b", "c"], "cheapest first, the primary a last")
        XCTAssertEqual(cheapest.json["instances"]!.array.filter { $0["region"] == "b" }.count, 10)
        let byPrice = try await broker.call(
            "GET", "/v1/inventory?computeClass=gpu&gpuSeries=T4&cpu=4&memoryGiB=16&sort=price", token: token)
        XCTAssertEqual(byPrice.json["regions"]!.array.map { $0["region"]!.string! }, ["c", "a", "b"], "b has nothing left")
        let capped = try await broker.call(
            "GET", "/v1/inventory?computeClass=gpu&gpuSeries=T4&cpu=4&memoryGiB=16&maxPricePerHour=2", token: token)
        XCTAssertEqual(capped.json["regions"]?[0]?["availableReplicas"], 0, "the primary a is over the cap")
        let bad = try await broker.call(
            "GET", "/v1/inventory?computeClass=gpu&gpuSeries=T4&cpu=4&memoryGiB=16&sort=colour", token: token)
        XCTAssertEqual(bad.status, 422)
        let negative = try await broker.call("POST", "/v1/allocations", token: token, json: Self.t4(["maxPricePerHour": -1]))
        XCTAssertEqual(negative.status, 422)
    }
}
