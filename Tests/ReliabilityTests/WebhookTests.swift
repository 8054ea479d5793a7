import BrokerCore
import Foundation
import JSON
import PostgresClient
import TestHarness
import TestSupport
import XCTest

/// Issue 18, webhooks: deliveries verified by the `standardwebhooks` PyPI package.
final class WebhookTests: XCTestCase {
    /// The venv's Python (scripts/test-venv); set by scripts/test.
    static var python: String? { TestPython.path }

    /// A receiver on loopback that is down for a while, two brokers, one of them
    /// killed and restarted meanwhile: every event of the tenant's allocations arrives
    /// verified, once, each allocation's in order.
    func testEveryDeliveryArrivesVerifiedAfterReceiverAndBrokerOutages() throws {
        guard let python = Self.python else { throw XCTSkip("no Python with standardwebhooks: run scripts/test-venv") }
        let url = try TestDatabase.create()
        let flags = ["--webhook-allow-private"]
        var a = try BrokerProcess(databaseURL: url, extra: flags)
        let b = try BrokerProcess(databaseURL: url, extra: flags)
        defer { [a, b].forEach { $0.stop() } }
        try a.waitReady()
        try b.waitReady()
        try Seed.region(port: a.port, "r1", primary: true)
        try Seed.pool(port: a.port, region: "r1", "p1", capacity: 1000)
        let token = try Seed.tenant(port: a.port)
        let otherToken = try Seed.tenant(port: a.port, "other")

        let receiverPort = try freePort()
        let received = NSTemporaryDirectory() + "gpb-hooks-\(UUID().uuidString.prefix(8)).jsonl"
        defer { unlink(received) }
        let registered = try HTTP.request(
            port: b.port, "POST", "/v1/webhooks", token: token,
            json: .object(["url": .string("http://127.0.0.1:\(receiverPort)/hook")]))
        XCTAssertEqual(registered.status, 201, registered.text)
        let endpoint = try XCTUnwrap(registered.json["id"]?.stringValue)
        let secret = try XCTUnwrap(registered.json["secret"]?.stringValue)
        XCTAssertTrue(secret.hasPrefix("whsec_"))

        func traffic(_ round: Int) throws {
            for index in 0..<6 {
                let port = index % 2 == 0 ? a.port : b.port
                let made = try HTTP.request(port: port, "POST", "/v1/allocations", token: token, json: Seed.allocation(replicas: 2, key: "\(round)-\(index)"))
                XCTAssertEqual(made.status, 201, made.text)
                if index % 3 == 0, let id = made.json["id"]?.stringValue {
                    XCTAssertEqual(try HTTP.request(port: port, "DELETE", "/v1/allocations/\(id)", token: token).status, 200)
                }
            }
            // Another tenant's events never reach this endpoint.
            _ = try HTTP.request(port: a.port, "POST", "/v1/allocations", token: otherToken, json: Seed.allocation(key: "x\(round)"))
        }

        var receiver = try startReceiver(python, receiverPort, secret, received)
        try traffic(1)
        try waitForDeliveries(received, atLeast: 1)
        receiver.terminate()
        receiver.waitUntilExit()
        // Down: events pile up, attempts fail; a broker dies and comes back.
        try traffic(2)
        a.kill9()
        a = try BrokerProcess(databaseURL: url, extra: flags)
        try a.waitReady()
        try traffic(3)
        usleep(2_000_000)
        let cameBack = Date()
        receiver = try startReceiver(python, receiverPort, secret, received)
        defer { receiver.terminate() }

        let db = try database(url)
        let expected: [String] = try db.query(
            """
            SELECT 'evt_' || l.xid || '_' || l.seq AS id FROM ledger l JOIN allocations al ON al.id = l.allocation_id
            JOIN tenants t ON t.id = al.tenant_id WHERE t.name = 'load' ORDER BY l.xid, l.seq
            """).map { try $0.decode("id") }
        var lines: [JSONValue] = []
        while Date().timeIntervalSince(cameBack) < 60 {
            lines = try readLines(received)
            if Set(lines.compactMap { $0["id"]?.stringValue }).count >= expected.count { break }
            usleep(200_000)
        }
        let caughtUpIn = Date().timeIntervalSince(cameBack)
        let ids = lines.compactMap { $0["id"]?.stringValue }
        XCTAssertTrue(lines.allSatisfy { $0["verified"] == .bool(true) }, "every delivery verifies: \(lines.filter { $0["verified"] != .bool(true) })")
        XCTAssertEqual(Set(ids), Set(expected), "every committed event of the tenant, nothing else")
        // Per allocation, first arrivals in feed order.
        var seen = Set<String>()
        var lastPosition: [String: Int] = [:]
        let position = Dictionary(uniqueKeysWithValues: expected.enumerated().map { ($1, $0) })
        for line in lines {
            guard let id = line["id"]?.stringValue, seen.insert(id).inserted,
                let allocation = line["payload"]?["data"]?["allocationId"]?.stringValue, let at = position[id] else { continue }
            XCTAssertGreaterThan(at, lastPosition[allocation] ?? -1, "allocation \(allocation): \(id) arrived out of order")
            lastPosition[allocation] = at
        }
        let deliveries = try HTTP.request(port: b.port, "GET", "/v1/webhooks/\(endpoint)/deliveries?limit=1000", token: token)
        let rows = deliveries.json["deliveries"]?.arrayValue ?? []
        XCTAssertEqual(rows.count, expected.count)
        let retried = rows.filter { ($0["attempts"]?.numberValue ?? 0) > 1 }.count
        XCTAssertGreaterThan(retried, 0, "some deliveries were retried while the receiver was down")
        XCTAssertEqual(try HTTP.request(port: b.port, "GET", "/v1/webhooks/\(endpoint)/deliveries", token: otherToken).status, 404)
        report(
            "18 webhooks",
            "\(expected.count) events, \(ids.count) requests received (\(ids.count - Set(ids).count) repeats), \(lines.filter { $0["verified"] == .bool(true) }.count) verified by standardwebhooks; \(retried) retried; caught up \(secs(caughtUpIn)) after the receiver came back")
    }

    /// The admin's endpoint takes the inventory's changes and every tenant's allocation
    /// events, verified by `standardwebhooks`; a tenant's endpoint, registered at the
    /// same time for every type, gets only its own allocations' events.
    func testTheAdminsEndpointGetsInventoryEventsAndTenantsNever() throws {
        guard let python = Self.python else { throw XCTSkip("no Python with standardwebhooks: run scripts/test-venv") }
        let (_, broker, token) = try smallBroker()
        defer { broker.stop() }
        let otherToken = try Seed.tenant(port: broker.port, "other")
        func receiver(_ token: String, _ types: [String]) throws -> (Process, String) {
            let port = try freePort()
            let output = NSTemporaryDirectory() + "gpb-hooks-\(UUID().uuidString.prefix(8)).jsonl"
            let registered = try HTTP.request(
                port: broker.port, "POST", "/v1/webhooks", token: token,
                json: .object(["url": .string("http://127.0.0.1:\(port)/"), "eventTypes": .array(types.map { .string($0) })]))
            XCTAssertEqual(registered.status, 201, registered.text)
            return (try startReceiver(python, port, registered.json["secret"]?.stringValue ?? "", output), output)
        }
        let (adminReceiver, adminOutput) = try receiver(BrokerProcess.adminToken, ["pool.changed", "allocation.reserved"])
        let (tenantReceiver, tenantOutput) = try receiver(token, [])
        defer {
            [adminReceiver, tenantReceiver].forEach { $0.terminate() }
            for path in [adminOutput, tenantOutput] { unlink(path) }
        }
        try Seed.pool(port: broker.port, region: "r1", "p1", capacity: 20)
        for (index, caller) in [token, otherToken].enumerated() {
            let made = try HTTP.request(port: broker.port, "POST", "/v1/allocations", token: caller, json: Seed.allocation(key: "i\(index)"))
            XCTAssertEqual(made.status, 201)
        }
        try Seed.region(port: broker.port, "r2", primary: false)  // not asked for
        try waitForDeliveries(adminOutput, atLeast: 3)
        try waitForDeliveries(tenantOutput, atLeast: 1)
        usleep(1_000_000)  // anything more would come now
        let admin = try readLines(adminOutput)
        XCTAssertTrue(admin.allSatisfy { $0["verified"] == .bool(true) })
        // Ordered per allocation (and the inventory's own lane), not across them.
        XCTAssertEqual(admin.compactMap { $0["payload"]?["type"]?.stringValue }.sorted(), ["allocation.reserved", "allocation.reserved", "pool.changed"])
        let report = admin.first { $0["payload"]?["type"] == .string("pool.changed") }
        XCTAssertEqual(report?["payload"]?["data"]?["current"]?["capacity"], .number(20))
        let tenant = try readLines(tenantOutput)
        XCTAssertEqual(tenant.compactMap { $0["payload"]?["type"]?.stringValue }, ["allocation.reserved"], "its own allocation only")
    }

    /// A delivery still failing after 24 h fails for good and marks its endpoint failing.
    func testADeliveryOutOfRetriesMarksTheEndpointFailing() throws {
        let (url, broker, token) = try smallBroker()
        defer { broker.stop() }
        let closed = try freePort()  // nobody listens there
        let registered = try HTTP.request(
            port: broker.port, "POST", "/v1/webhooks", token: token, json: .object(["url": .string("http://127.0.0.1:\(closed)/")]))
        let endpoint = try XCTUnwrap(registered.json["id"]?.stringValue)
        XCTAssertEqual(try HTTP.request(port: broker.port, "POST", "/v1/allocations", token: token, json: Seed.allocation(key: "f")).status, 201)
        let db = try database(url)
        func attempts() throws -> Int {
            try db.query("SELECT coalesce(max(attempts), 0) AS n FROM webhook_deliveries")[0].decode("n")
        }
        let started = Date()
        while try attempts() == 0 && Date().timeIntervalSince(started) < 10 { usleep(100_000) }
        XCTAssertGreaterThan(try attempts(), 0)
        XCTAssertEqual(try HTTP.request(port: broker.port, "GET", "/v1/webhooks/\(endpoint)", token: token).json["status"], .string("active"))
        try db.executeScript("UPDATE webhook_deliveries SET created_at = now() - interval '25 hours', next_attempt_at = now()")
        var status = "active"
        while status == "active" && Date().timeIntervalSince(started) < 20 {
            usleep(100_000)
            status = try HTTP.request(port: broker.port, "GET", "/v1/webhooks/\(endpoint)", token: token).json["status"]?.stringValue ?? "?"
        }
        XCTAssertEqual(status, "failing")
        let delivery = try HTTP.request(port: broker.port, "GET", "/v1/webhooks/\(endpoint)/deliveries", token: token).json["deliveries"]?.arrayValue?.first
        XCTAssertEqual(delivery?["status"], .string("failed"))
        XCTAssertNotNil(delivery?["lastError"]?.stringValue)
    }

    /// A receiver that takes the request and never answers does not hold up shutdown:
    /// SIGTERM cancels the attempt in flight, which is recorded for a retry, and the
    /// broker exits (URLSession's own timeout is 15 s, the attempt's deadline 20 s).
    func testShutdownDoesNotWaitForAReceiverThatNeverAnswers() throws {
        let (url, broker, token) = try smallBroker()
        defer { broker.stop() }
        let (silent, port) = try silentListener()
        defer { close(silent) }
        let registered = try HTTP.request(
            port: broker.port, "POST", "/v1/webhooks", token: token, json: .object(["url": .string("http://127.0.0.1:\(port)/")]))
        XCTAssertEqual(registered.status, 201, registered.text)
        XCTAssertEqual(try HTTP.request(port: broker.port, "POST", "/v1/allocations", token: token, json: Seed.allocation(key: "h")).status, 201)
        let db = try database(url)
        let waiting = Date()
        while try db.query("SELECT coalesce(max(attempts), 0) AS n FROM webhook_deliveries")[0].decode("n", as: Int.self) == 0 {
            guard Date().timeIntervalSince(waiting) < 10 else { throw TestSetupError("no attempt within 10 s") }
            usleep(50_000)
        }
        usleep(500_000)  // the request is out and waits for an answer
        let stopping = Date()
        kill(broker.pid, SIGTERM)
        while broker.process.isRunning && Date().timeIntervalSince(stopping) < 30 { usleep(20_000) }
        let took = Date().timeIntervalSince(stopping)
        XCTAssertFalse(broker.process.isRunning)
        XCTAssertLessThan(took, 5, "SIGTERM waited for the receiver")
        let row = try db.query("SELECT status, last_error FROM webhook_deliveries")[0]
        XCTAssertEqual(try row.decode("status", as: String.self), "pending", "tried again later, by this broker or another")
        XCTAssertEqual(try row.decodeIfPresent("last_error", as: String.self), "not sent: the broker is shutting down")
        report("18 webhook shutdown", "exited \(secs(took)) after SIGTERM with a delivery in flight to a receiver that never answers; the attempt was recorded for a retry")
    }

    /// A broker that may call loopback receivers, region r1 with a pool of 10, a tenant:
    /// the database URL, the broker (to stop) and the tenant's token.
    private func smallBroker() throws -> (url: String, broker: BrokerProcess, token: String) {
        let url = try TestDatabase.create()
        let broker = try BrokerProcess(databaseURL: url, extra: ["--webhook-allow-private"])
        do {
            try broker.waitReady()
            try Seed.region(port: broker.port, "r1", primary: true)
            try Seed.pool(port: broker.port, region: "r1", "p1", capacity: 10)
            return (url, broker, try Seed.tenant(port: broker.port))
        } catch {
            broker.stop()
            throw error
        }
    }
}

/// A webhook receiver verifying with `standardwebhooks` (scripts/webhook-receiver.py) and
/// what it wrote, one JSON line per request: shared by the tests that receive webhooks.
extension XCTestCase {
    func startReceiver(_ python: String, _ port: Int, _ secret: String, _ output: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/webhook-receiver.py").path
        process.arguments = [script, String(port), secret, output]
        try process.run()
        let started = Date()
        while Date().timeIntervalSince(started) < 10 {
            if let fd = try? RawClient.connect(port: port, timeoutSeconds: 1) {
                close(fd)
                return process
            }
            usleep(50_000)
        }
        throw TestSetupError("webhook receiver did not start")
    }

    func readLines(_ path: String) throws -> [JSONValue] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return try text.split(separator: "\n").map { try JSONValue.parse(Array($0.utf8)) }
    }

    func waitForDeliveries(_ path: String, atLeast count: Int) throws {
        let started = Date()
        while try readLines(path).count < count {
            guard Date().timeIntervalSince(started) < 20 else { throw TestSetupError("no delivery within 20 s") }
            usleep(100_000)
        }
    }
}
