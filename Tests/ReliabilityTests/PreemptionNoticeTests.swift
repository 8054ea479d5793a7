import BrokerCore
import Foundation
import JSON
import PostgresClient
import TestHarness
import TestSupport
import XCTest

/// Issue 29, notice: a real broker process (its notice worker running), the victim's
/// tenant watching over SSE and through a webhook verified by `standardwebhooks`.
final class PreemptionNoticeTests: XCTestCase {
    func request(_ qos: String, _ replicas: Int) -> JSONValue {
        .object([
            "computeClass": .string("general-purpose"), "cpu": .number(1), "memoryGiB": .number(1),
            "qos": .string(qos), "replicas": .number(Double(replicas)),
        ])
    }

    /// The victim keeps running until its deadline, its tenant hears `allocation.preempting`
    /// (with the deadline) on both channels while it still runs, and the preemptor, pending
    /// meanwhile, is admitted within a second of the deadline and not before.
    func testAVictimIsWarnedBeforeItStopsAndThePreemptorGetsItsCapacityAtTheDeadline() throws {
        guard let python = TestPython.path else { throw XCTSkip("no Python with standardwebhooks: run scripts/test-venv") }
        let url = try TestDatabase.create()
        let broker = try BrokerProcess(databaseURL: url, reconcileInterval: 0.2, extra: ["--webhook-allow-private"])
        defer { broker.stop() }
        try broker.waitReady()
        try Seed.region(port: broker.port, "r1", primary: true)
        try Seed.pool(port: broker.port, region: "r1", "p1", capacity: 2)
        let victim = try Seed.tenant(port: broker.port, "victim")
        let preemptor = try Seed.tenant(port: broker.port, "preemptor")
        let notice = 5.0
        let set = try HTTP.request(
            port: broker.port, "PUT", "/v1/admin/preemption/best-effort", token: BrokerProcess.adminToken,
            json: .object(["noticeSeconds": .number(notice), "minRuntimeSeconds": .number(0)]))
        XCTAssertEqual(set.status, 200, set.text)

        let receiverPort = try freePort()
        let output = NSTemporaryDirectory() + "gpb-preempting-\(UUID().uuidString.prefix(8)).jsonl"
        defer { unlink(output) }
        let hook = try HTTP.request(
            port: broker.port, "POST", "/v1/webhooks", token: victim,
            json: .object(["url": .string("http://127.0.0.1:\(receiverPort)/"), "eventTypes": .array(["allocation.preempting"])]))
        XCTAssertEqual(hook.status, 201, hook.text)
        let receiver = try startReceiver(python, receiverPort, hook.json["secret"]?.stringValue ?? "", output)
        defer { receiver.terminate() }

        let held = try HTTP.request(port: broker.port, "POST", "/v1/allocations", token: victim, json: request("best-effort", 2))
        XCTAssertEqual(held.status, 201, held.text)
        let victimId = try XCTUnwrap(held.json["id"]?.stringValue)
        let stream = try SSEClient(port: broker.port, path: "/v1/allocations/\(victimId)/events", token: victim)
        defer { stream.close() }
        let urgent = try HTTP.request(port: broker.port, "POST", "/v1/allocations", token: preemptor, json: request("default", 1))
        XCTAssertEqual(urgent.status, 202, urgent.text)
        let urgentId = try XCTUnwrap(urgent.json["id"]?.stringValue)

        let db = try database(url)
        func victimState() throws -> (state: String, deadline: Date) {
            let row = try db.query("SELECT state, preempt_deadline FROM instances WHERE preempted_for IS NOT NULL")[0]
            return (try row.decode("state"), try row.decode("preempt_deadline"))
        }
        let deadline = try victimState().deadline
        let warned = try stream.read(atLeast: 1, within: notice).first { $0.event == "allocation.preempting" }
        XCTAssertNotNil(warned, "the watch stream says it")
        XCTAssertTrue(warned?.data.contains("\"deadline\"") ?? false, warned?.data ?? "")
        XCTAssertEqual(try victimState().state, "preempting", "and the instance still runs")
        try waitForDeliveries(output, atLeast: 1)
        XCTAssertEqual(try victimState().state, "preempting", "the webhook came before it stopped, too")
        let delivery = try XCTUnwrap(try readLines(output).first)
        XCTAssertEqual(delivery["verified"], .bool(true))
        XCTAssertEqual(delivery["payload"]?["type"], .string("allocation.preempting"))
        XCTAssertNotNil(delivery["payload"]?["data"]?["deadline"]?.stringValue)
        let pending = try HTTP.request(port: broker.port, "GET", "/v1/allocations/\(urgentId)", token: preemptor)
        XCTAssertEqual(pending.json["status"], .string("pending"), "the preemptor waits for the deadline")

        var admittedAt: Date?
        while admittedAt == nil && Date() < deadline.addingTimeInterval(5) {
            let seen = try HTTP.request(port: broker.port, "GET", "/v1/allocations/\(urgentId)", token: preemptor)
            if seen.json["status"] == .string("active") { admittedAt = Date() }
            usleep(50_000)
        }
        let admitted = try XCTUnwrap(admittedAt, "admitted after the deadline")
        XCTAssertGreaterThanOrEqual(admitted, deadline)
        XCTAssertLessThan(admitted.timeIntervalSince(deadline), 1, "within a second of the deadline")
        XCTAssertEqual(try victimState().state, "preempted")
        let stoppedAt: Date = try db.query("SELECT ended_at FROM instances WHERE preempted_for IS NOT NULL")[0].decode("ended_at")
        XCTAssertGreaterThanOrEqual(stoppedAt, deadline, "it ran until its deadline")
        XCTAssertEqual(try verify(url).status, 0)
        report("29 notice", "victim warned over SSE and a verified webhook, stopped \(String(format: "%.2f", stoppedAt.timeIntervalSince(deadline))) s after its deadline; preemptor admitted \(String(format: "%.2f", admitted.timeIntervalSince(deadline))) s after it")
    }
}
