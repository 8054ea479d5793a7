import BrokerCore
import BrokerStore
import Foundation
import JSON
import TestSupport
import XCTest

/// Rule 8: best-effort instances are preemptible by default-QoS requests.
final class PreemptionTests: XCTestCase {
    var broker: TestBroker!
    var token: String!

    override func setUp() async throws {
        broker = try TestBroker()
        token = try await broker.tenant().token
        try await broker.region("a")
        try await broker.pool("a", "t4", series: "T4", gpuMemory: 16, capacity: 4)
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func request(_ qos: String, _ replicas: Int) -> JSONValue {
        ["computeClass": "gpu", "gpuSeries": ["T4"], "cpu": 4, "memoryGiB": 16, "qos": .string(qos),
         "replicas": .number(Double(replicas))]
    }

    func testDefaultRequestReclaimsTheNewestBestEffortInstancesItNeeds() async throws {
        let older = try await broker.call("POST", "/v1/allocations", token: token, json: request("best-effort", 2))
        let newer = try await broker.call("POST", "/v1/allocations", token: token, json: request("best-effort", 2))
        XCTAssertEqual(newer.status, 201)
        let urgent = try await broker.call("POST", "/v1/allocations", token: token, json: request("default", 1))
        XCTAssertEqual(urgent.status, 201, urgent.text)
        XCTAssertTrue(urgent.json["decisions"]!.array.contains { $0["reason"]!.string!.contains("preempted 1 best-effort instance") })

        let victim = try await broker.call("GET", "/v1/allocations/\(newer.json["id"]!.string!)", token: token)
        XCTAssertEqual(victim.json["status"], "partial")
        XCTAssertEqual(victim.json["placedReplicas"], 1)
        XCTAssertEqual(victim.json["instances"]!.array.map { $0["state"]!.string! }, ["running", "preempted"], "newest first")
        XCTAssertTrue(victim.json["decisions"]!.array.contains { $0["reason"]!.string!.contains("preempted by a default-QoS allocation") })
        let events = try await broker.call("GET", "/v1/allocations/\(newer.json["id"]!.string!)/events", token: token)
        XCTAssertEqual(events.json["events"]!.array.last?["kind"], "preempted")
        XCTAssertEqual(events.json["events"]!.array.last?["delta"], -1)
        let untouched = try await broker.call("GET", "/v1/allocations/\(older.json["id"]!.string!)", token: token)
        XCTAssertEqual(untouched.json["status"], "active")
        let problems = try await LedgerCheck.run(broker)
        XCTAssertEqual(problems, [])
    }

    /// Issue 17 (3): the victim's tenant sees that it was preempted, not by whom.
    /// Issue 31, D3: nor in its feed, streams (the same event bodies) and webhook bodies.
    func testAPreemptedTenantDoesNotLearnThePreemptorsIdentifiers() async throws {
        let hook = try await broker.call("POST", "/v1/webhooks", token: token, json: ["url": "https://203.0.113.7/hook"])
        XCTAssertEqual(hook.status, 201, hook.text)
        let victim = try await broker.call("POST", "/v1/allocations", token: token, json: request("best-effort", 4))
        XCTAssertEqual(victim.status, 201)
        let other = try await broker.tenant()
        let preemptor = try await broker.call("POST", "/v1/allocations", token: other.token, json: request("default", 1))
        XCTAssertEqual(preemptor.status, 201, preemptor.text)
        let preemptorId = preemptor.json["id"]!.string!
        let victimId = victim.json["id"]!.string!
        let seen = try await broker.call("GET", "/v1/allocations/\(victimId)", token: token)
        let events = try await broker.call("GET", "/v1/allocations/\(victimId)/events", token: token)
        XCTAssertEqual(seen.json["status"], "partial")
        XCTAssertEqual(events.json["events"]!.array.last?["kind"], "preempted")
        let feed = try await broker.call("GET", "/v1/events", token: token)
        XCTAssertEqual(feed.json["events"]?.array.last?["data"]?["actor"], "preemption", feed.text)
        _ = try await WebhookStore(pool: broker.pool).dispatch()
        let bodies = try await broker.pool.withConnection { c in
            try c.query("SELECT payload FROM webhook_deliveries WHERE event_type = 'allocation.preempted'").map {
                try $0.decode("payload", as: String.self)
            }
        }
        XCTAssertEqual(bodies.count, 1)
        for leaked in [preemptorId, other.id] {
            XCTAssertFalse(seen.text.contains(leaked), "the allocation shows \(leaked): \(seen.text)")
            XCTAssertFalse(events.text.contains(leaked), "its events show \(leaked): \(events.text)")
            XCTAssertFalse(feed.text.contains(leaked), "its feed shows \(leaked): \(feed.text)")
            XCTAssertFalse(bodies.joined().contains(leaked), "its webhook body shows \(leaked): \(bodies)")
        }
        // The ledger (the admin's view, through the database) keeps both.
        let actors = try await broker.pool.withConnection { c in
            try c.query("SELECT actor FROM ledger WHERE kind = 'preempted'").map { try $0.decode("actor", as: String.self) }
        }
        XCTAssertEqual(actors.count, 1)
        XCTAssertTrue(actors[0].contains(other.id) && actors[0].contains(preemptorId), "\(actors)")
    }

    func testBestEffortNeverPreemptsAndDefaultIsNeverPreempted() async throws {
        let defaults = try await broker.call("POST", "/v1/allocations", token: token, json: request("default", 3))
        XCTAssertEqual(defaults.status, 201)
        let bestEffort = try await broker.call("POST", "/v1/allocations", token: token, json: request("best-effort", 1))
        XCTAssertEqual(bestEffort.status, 201)
        let more = try await broker.call("POST", "/v1/allocations", token: token, json: request("best-effort", 1))
        XCTAssertEqual(more.status, 409, "best-effort requests never preempt")
        let twoMore = try await broker.call("POST", "/v1/allocations", token: token, json: request("default", 2))
        XCTAssertEqual(twoMore.status, 409, "one best-effort instance cannot make room for two, and defaults are never taken")
        let stillRunning = try await broker.call("GET", "/v1/allocations/\(bestEffort.json["id"]!.string!)", token: token)
        XCTAssertEqual(stillRunning.json["status"], "active", "a refused request preempts nothing")
        let problems = try await LedgerCheck.run(broker)
        XCTAssertEqual(problems, [])
    }
}
