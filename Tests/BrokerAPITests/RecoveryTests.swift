import BrokerCore
import BrokerStore
import Foundation
import JSON
import TestSupport
import XCTest

/// Issue 29, recovery: an allocation that asks to `recover` gets its lost replicas placed
/// again in the transaction of the loss, by the same planner and under the same limits.
final class RecoveryTests: XCTestCase {
    var broker: TestBroker!
    var token: String!

    override func setUp() async throws {
        broker = try TestBroker()
        token = try await broker.tenant().token
        try await broker.twoT4Regions(capacity: 2)
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func request(_ replicas: Int, qos: String = "default", recover: Bool, cap: Double? = nil, region: String? = nil) -> JSONValue {
        var body: [String: JSONValue] = [
            "computeClass": "gpu", "gpuSeries": ["T4"], "cpu": 4, "memoryGiB": 16, "qos": .string(qos),
            "replicas": .number(Double(replicas)), "recover": .bool(recover),
        ]
        if let cap { body["maxPricePerHour"] = .number(cap) }
        if let region { body["region"] = .string(region) }
        return .object(body)
    }

    func report(_ body: JSONValue) async throws -> TestBroker.Response {
        try await broker.report(body)
    }

    func instances(_ allocation: JSONValue) -> [String] {
        allocation["instances"]!.array.map { "\($0["region"]!.string!):\($0["state"]!.string!)" }
    }

    func testReplicasLostToAnInterruptionAreRecoveredInAnotherRegionWhenTheirsIsOut() async throws {
        let made = try await broker.call("POST", "/v1/allocations", token: token, json: request(2, recover: true))
        XCTAssertEqual(made.status, 201, made.text)
        XCTAssertEqual(made.json["request"]?["recover"], true)
        let id = made.json["id"]!.string!
        let out = try await report(
            ["id": "out-a", "kind": "outOfStock", "region": "a", "poolId": "t4", "coolDownSeconds": 600, "reason": "reclaimed"])
        XCTAssertEqual(out.status, 200)
        let lost = made.json["instances"]!.array.map { $0["id"]! }
        let started = ContinuousClock.now
        let interrupted = try await report(["id": "lost-a", "kind": "interrupted", "instances": .array(lost)])
        XCTAssertEqual(interrupted.status, 200, interrupted.text)
        let seen = try await broker.call("GET", "/v1/allocations/\(id)", token: token)
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(1), "recovered within a second of the loss")
        XCTAssertEqual(seen.json["status"], "active", seen.text)
        XCTAssertEqual(seen.json["placedReplicas"], 2)
        XCTAssertEqual(instances(seen.json), ["a:interrupted", "a:interrupted", "b:running", "b:running"])
        XCTAssertTrue(seen.json["decisions"]!.array.contains { $0["reason"] == "recovered 2 of 2 lost replicas" }, seen.text)
        let events = try await broker.call("GET", "/v1/allocations/\(id)/events", token: token)
        XCTAssertEqual(
            events.json["events"]!.array.suffix(4).map { $0["kind"]!.string! }, ["interrupted", "interrupted", "reserved", "reserved"])
        let problems = try await LedgerCheck.run(broker)
        XCTAssertEqual(problems, [])
    }

    func testWithoutRecoverAnAllocationShrinksAndSaysWhy() async throws {
        let made = try await broker.call("POST", "/v1/allocations", token: token, json: request(2, recover: false))
        let failed = try await report(
            ["id": "lost-b", "kind": "failedToStart", "instances": [made.json["instances"]![0]!["id"]!], "reason": "quota at the provider"])
        XCTAssertEqual(failed.status, 200, failed.text)
        let seen = try await broker.call("GET", "/v1/allocations/\(made.json["id"]!.string!)", token: token)
        XCTAssertEqual(seen.json["status"], "partial")
        XCTAssertEqual(instances(seen.json), ["a:failedToStart", "a:running"])
        XCTAssertEqual(seen.json["decisions"]!.array.last?["reason"], "1 instance(s) failed to start: quota at the provider")
    }

    /// The price cap holds: region b costs more than the request allows, so nothing is recovered there.
    func testARecoveryKeepsThePriceCap() async throws {
        let made = try await broker.call("POST", "/v1/allocations", token: token, json: request(2, recover: true, cap: 1.5))
        XCTAssertEqual(made.status, 201, made.text)
        _ = try await report(["id": "out-c", "kind": "outOfStock", "region": "a", "poolId": "t4", "coolDownSeconds": 600])
        let failed = try await report(
            ["id": "lost-c", "kind": "failedToStart", "instances": [made.json["instances"]![0]!["id"]!]])
        XCTAssertEqual(failed.status, 200, failed.text)
        let seen = try await broker.call("GET", "/v1/allocations/\(made.json["id"]!.string!)", token: token)
        XCTAssertEqual(seen.json["status"], "partial")
        XCTAssertEqual(instances(seen.json), ["a:failedToStart", "a:running"])
        XCTAssertTrue(seen.json["decisions"]!.array.contains { $0["reason"] == "recovered 0 of 1 lost replica" }, seen.text)
        let problems = try await LedgerCheck.run(broker)
        XCTAssertEqual(problems, [])
    }

    /// A best-effort replica preempted at once (no notice) is placed again elsewhere, in
    /// the preemptor's transaction.
    func testAPreemptedReplicaIsRecoveredElsewhere() async throws {
        let victim = try await broker.call("POST", "/v1/allocations", token: token, json: request(2, qos: "best-effort", recover: true))
        XCTAssertEqual(instances(victim.json), ["a:running", "a:running"])
        let other = try await broker.tenant("urgent").token
        let urgent = try await broker.call("POST", "/v1/allocations", token: other, json: request(1, recover: false, region: "a"))
        XCTAssertEqual(urgent.status, 201, urgent.text)
        let seen = try await broker.call("GET", "/v1/allocations/\(victim.json["id"]!.string!)", token: token)
        XCTAssertEqual(seen.json["status"], "active", seen.text)
        XCTAssertEqual(instances(seen.json), ["a:running", "a:preempted", "b:running"])
        let problems = try await LedgerCheck.run(broker)
        XCTAssertEqual(problems, [])
    }
}
