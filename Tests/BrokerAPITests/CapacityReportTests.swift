import BrokerCore
import BrokerStore
import Foundation
import JSON
import TestSupport
import XCTest

/// Issue 29, reports from the real world: instances a region's agent says were lost, and
/// pools it says are out of stock for a while.
final class CapacityReportTests: XCTestCase {
    var broker: TestBroker!
    var token: String!

    override func setUp() async throws {
        broker = try TestBroker()
        token = try await broker.tenant().token
        try await broker.twoT4Regions(capacity: 4)
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func request(_ replicas: Int, region: String? = nil, recover: Bool = false) -> JSONValue {
        var body: [String: JSONValue] = [
            "computeClass": "gpu", "gpuSeries": ["T4"], "cpu": 4, "memoryGiB": 16, "replicas": .number(Double(replicas)),
            "allOrNothing": false, "recover": .bool(recover),
        ]
        if let region { body["region"] = .string(region) }
        return .object(body)
    }

    func report(_ body: JSONValue, token: String? = nil) async throws -> TestBroker.Response {
        try await broker.report(body, token: token)
    }

    func ledgerRows() async throws -> Int {
        try await broker.pool.withConnection { c in try c.query("SELECT count(*)::int AS n FROM ledger")[0].decode("n") }
    }

    func testLostInstancesStopOnceAndTheirAllocationShrinksSayingWhy() async throws {
        let made = try await broker.call("POST", "/v1/allocations", token: token, json: request(3, region: "a"))
        XCTAssertEqual(made.status, 201, made.text)
        let id = made.json["id"]!.string!
        let lost = made.json["instances"]!.array.prefix(2).map { $0["id"]! }
        let body: JSONValue = ["id": "agent-a-1", "kind": "interrupted", "instances": .array(Array(lost)), "reason": "spot reclaim"]
        let first = try await report(body)
        XCTAssertEqual(first.status, 200, first.text)
        XCTAssertEqual(first.json["stopped"]!.array.count, 2)
        XCTAssertEqual(first.json["alreadyStopped"]!.array.count, 0)

        let seen = try await broker.call("GET", "/v1/allocations/\(id)", token: token)
        XCTAssertEqual(seen.json["status"], "partial")
        XCTAssertEqual(seen.json["placedReplicas"], 1)
        XCTAssertEqual(seen.json["instances"]!.array.map { $0["state"]!.string! }, ["interrupted", "interrupted", "running"])
        XCTAssertTrue(seen.json["decisions"]!.array.contains { $0["reason"]!.string! == "2 instance(s) interrupted: spot reclaim" }, seen.text)
        let events = try await broker.call("GET", "/v1/allocations/\(id)/events", token: token)
        XCTAssertEqual(events.json["events"]!.array.suffix(2).map { $0["kind"]!.string! }, ["interrupted", "interrupted"])
        let inventory = try await broker.call("GET", "/v1/regions/a/inventory", token: token)
        XCTAssertEqual(inventory.json["pools"]![0]!["allocated"], 1)

        let rows = try await ledgerRows()
        let again = try await report(body)
        XCTAssertEqual(again.status, 200)
        XCTAssertEqual(again.text, first.text, "the same report answers the first answer")
        let other = try await report(["id": "agent-a-2", "kind": "failedToStart", "instances": .array(Array(lost))])
        XCTAssertEqual(other.status, 200, other.text)
        XCTAssertEqual(other.json["stopped"]!.array.count, 0)
        XCTAssertEqual(other.json["alreadyStopped"]!.array.count, 2, "already out of service: not counted again")
        let afterRepeats = try await ledgerRows()
        XCTAssertEqual(afterRepeats, rows, "repeats write nothing to the ledger")

        let reused = try await report(["id": "agent-a-1", "kind": "failedToStart", "instances": .array(Array(lost))])
        XCTAssertEqual(reused.status, 409, reused.text)
        let running = made.json["instances"]![2]!["id"]!
        let unknown = try await report(
            ["id": "agent-a-3", "kind": "interrupted", "instances": [running, "00000000-0000-4000-8000-000000000001"]])
        XCTAssertEqual(unknown.status, 404, unknown.text)
        XCTAssertTrue(unknown.text.contains("00000000-0000-4000-8000-000000000001"), unknown.text)
        let still = try await broker.call("GET", "/v1/allocations/\(id)", token: token)
        XCTAssertEqual(still.json["placedReplicas"], 1, "a report with an unknown instance changes nothing")
        let bad = try await report(["id": "agent-a-4", "kind": "interrupted", "instances": ["nope"], "coolDownSeconds": 5])
        XCTAssertEqual(bad.status, 422, bad.text)
        XCTAssertTrue(bad.text.contains("instances[0]") && bad.text.contains("coolDownSeconds"), bad.text)
        let byTenant = try await report(["id": "agent-a-5", "kind": "interrupted", "instances": [running]], token: token)
        XCTAssertEqual(byTenant.status, 403)
        let problems = try await LedgerCheck.run(broker)
        XCTAssertEqual(problems, [])
    }

    /// A pool out of stock gets no grant until its cool-down ends (grants go to another
    /// region meanwhile); the inventory says so and why; an inventory report during the
    /// cool-down changes what the pool returns to, not what it offers.
    func testAPoolOutOfStockGetsNoGrantUntilItsCoolDownEnds() async throws {
        let stock = try await report(
            ["id": "agent-a-7", "kind": "outOfStock", "region": "a", "poolId": "t4", "coolDownSeconds": 600, "reason": "ECI stock-out"])
        XCTAssertEqual(stock.status, 200, stock.text)
        XCTAssertNotNil(stock.json["coolDownUntil"]?.string)
        let inventory = try await broker.call("GET", "/v1/regions/a/inventory", token: token)
        XCTAssertEqual(inventory.json["pools"]![0]!["capacity"], 0)
        XCTAssertEqual(inventory.json["pools"]![0]!["stockOut"]?["reason"], "ECI stock-out")
        XCTAssertEqual(inventory.json["pools"]![0]!["stockOut"]?["reportedCapacity"], 4)

        let elsewhere = try await broker.call("POST", "/v1/allocations", token: token, json: request(2))
        XCTAssertEqual(elsewhere.status, 201, elsewhere.text)
        XCTAssertEqual(Set(elsewhere.json["instances"]!.array.map { $0["region"]!.string! }), ["b"], "the next grants go elsewhere")
        let pinned = try await broker.call("POST", "/v1/allocations", token: token, json: request(1, region: "a"))
        XCTAssertEqual(pinned.status, 409, "none in the pool out of stock")

        _ = try await broker.pool("a", "t4", series: "T4", gpuMemory: 16, capacity: 6, price: 1)
        let reported = try await broker.call("GET", "/v1/regions/a/inventory", token: token)
        XCTAssertEqual(reported.json["pools"]![0]!["capacity"], 0, "still out of stock")
        XCTAssertEqual(reported.json["pools"]![0]!["stockOut"]?["reportedCapacity"], 6)

        let maintenance = MaintenanceStore(pool: broker.pool)
        let early = try await maintenance.endStockOuts()
        XCTAssertEqual(early, 0, "the cool-down holds")
        try await broker.pool.withConnection { c in try c.query("UPDATE pool_stockouts SET until = now()") }
        let ended = try await maintenance.endStockOuts()
        XCTAssertEqual(ended, 1)
        let back = try await broker.call("GET", "/v1/regions/a/inventory", token: token)
        XCTAssertEqual(back.json["pools"]![0]!["capacity"], 6)
        XCTAssertNil(back.json["pools"]![0]!["stockOut"])
        let granted = try await broker.call("POST", "/v1/allocations", token: token, json: request(1, region: "a"))
        XCTAssertEqual(granted.status, 201, granted.text)
        let unknownPool = try await report(
            ["id": "agent-a-8", "kind": "outOfStock", "region": "a", "poolId": "nope", "coolDownSeconds": 60])
        XCTAssertEqual(unknownPool.status, 404)
    }

    /// Many random losses (half of them recovered), repeats, releases and stock-outs:
    /// `gpubroker verify` stays clean.
    func testTheLedgerAddsUpAfterManyRandomLosses() async throws {
        var generator = SystemRandomNumberGenerator()
        var live: [(allocation: String, instance: JSONValue)] = []
        var lost: [JSONValue] = []
        for step in 0..<300 {
            switch Int.random(in: 0..<10, using: &generator) {
            case 0..<4:
                let made = try await broker.call(
                    "POST", "/v1/allocations", token: token, json: request(Int.random(in: 1...3), recover: Bool.random()))
                if made.status == 201 {
                    live += made.json["instances"]!.array.map { (made.json["id"]!.string!, $0["id"]!) }
                }
            case 4..<7 where !live.isEmpty:
                let victim = live.remove(at: Int.random(in: 0..<live.count))
                let kind: JSONValue = Bool.random() ? "interrupted" : "failedToStart"
                let answer = try await report(["id": .string("random-\(step)"), "kind": kind, "instances": [victim.instance]])
                XCTAssertEqual(answer.status, 200, answer.text)
                lost.append(victim.instance)
                // What a recovery placed is live too.
                let now = try await broker.call("GET", "/v1/allocations/\(victim.allocation)", token: token)
                for instance in now.json["instances"]!.array where instance["state"] == "running" {
                    if !live.contains(where: { $0.instance == instance["id"]! }) { live.append((victim.allocation, instance["id"]!)) }
                }
            case 7 where !lost.isEmpty:
                let again = try await report(["id": .string("repeat-\(step)"), "kind": "interrupted", "instances": [lost.randomElement()!]])
                XCTAssertEqual(again.json["stopped"]!.array.count, 0)
            case 8 where !live.isEmpty:
                let allocation = live.randomElement()!.allocation
                _ = try await broker.call("DELETE", "/v1/allocations/\(allocation)", token: token)
                live.removeAll { $0.allocation == allocation }
            default:
                let stock = try await report(
                    ["id": .string("stock-\(step)"), "kind": "outOfStock", "region": Bool.random() ? "a" : "b", "poolId": "t4",
                     "available": .number(Double(Int.random(in: 0...4))), "coolDownSeconds": 600])
                XCTAssertEqual(stock.status, 200, stock.text)
                if Bool.random() {
                    try await broker.pool.withConnection { c in try c.query("UPDATE pool_stockouts SET until = now()") }
                    _ = try await MaintenanceStore(pool: broker.pool).endStockOuts()
                }
            }
        }
        XCTAssertGreaterThan(lost.count, 50)
        let problems = try await LedgerCheck.run(broker)
        XCTAssertEqual(problems, [])
    }
}
