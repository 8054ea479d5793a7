import BrokerCore
import Foundation
import JSON
import TestSupport
import XCTest

/// Webhook endpoints (the API; deliveries are in ReliabilityTests/WebhookTests) and
/// queue positions.
final class EventAPITests: XCTestCase {
    var broker: TestBroker!

    override func setUp() async throws {
        broker = try TestBroker()
        try await broker.region("a")
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 2)
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func testWebhookURLsThatReachInternalAddressesAreRefused() async throws {
        let token = try await broker.tenant().token
        for url in [
            "http://127.0.0.1:9/hook", "http://localhost/", "http://[::1]/", "http://169.254.169.254/latest/meta-data",
            "http://10.1.2.3/", "http://172.20.0.1/", "http://192.168.1.1/", "http://[fd00::1]/", "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/", "ftp://example.com/", "not a url", "http://user:pw@example.com/",
        ] {
            let answer = try await broker.call("POST", "/v1/webhooks", token: token, json: ["url": .string(url)])
            XCTAssertEqual(answer.status, 422, "\(url): \(answer.text)")
            XCTAssertEqual(answer.json["code"], "validation_failed", url)
        }
        let wrongType = try await broker.call(
            "POST", "/v1/webhooks", token: token, json: ["url": "http://127.0.0.1/", "eventTypes": ["allocation.exploded"]])
        XCTAssertEqual(wrongType.status, 422)
        let inventory = try await broker.call(
            "POST", "/v1/webhooks", token: token, json: ["url": "https://203.0.113.7/", "eventTypes": ["pool.changed"]])
        XCTAssertEqual(inventory.status, 422, "the inventory's events are the admin's")
        let list = try await broker.call("GET", "/v1/webhooks", token: token)
        XCTAssertEqual(list.json["webhooks"]?.array.count, 0, "nothing was registered")
        let admins = try await broker.call(
            "POST", "/v1/webhooks", token: broker.adminToken, json: ["url": "https://203.0.113.7/", "eventTypes": ["pool.changed"]])
        XCTAssertEqual(admins.status, 201, admins.text)
        let adminsId = try XCTUnwrap(admins.json["id"]?.string)
        let seenByTenant = try await broker.call("GET", "/v1/webhooks/\(adminsId)", token: token)
        XCTAssertEqual(seenByTenant.status, 404, "the admin's endpoint is not a tenant's")
        let adminList = try await broker.call("GET", "/v1/webhooks", token: broker.adminToken)
        XCTAssertEqual(adminList.json["webhooks"]?.array.count, 1)
    }

    func testWebhookEndpointLifecycleAndIsolation() async throws {
        let token = try await broker.tenant("alice").token
        let other = try await broker.tenant("bob").token
        // A public address literal: registration resolves nothing and sends nothing.
        let created = try await broker.call(
            "POST", "/v1/webhooks", token: token, json: ["url": "https://203.0.113.7/hooks", "eventTypes": ["allocation.released"]])
        XCTAssertEqual(created.status, 201, created.text)
        let id = try XCTUnwrap(created.json["id"]?.string)
        let secret = try XCTUnwrap(created.json["secret"]?.string)
        XCTAssertTrue(secret.hasPrefix("whsec_"))
        XCTAssertEqual(created.json["status"], "active")
        let shown = try await broker.call("GET", "/v1/webhooks/\(id)", token: token)
        XCTAssertEqual(shown.status, 200)
        XCTAssertNil(shown.json["secret"], "the secret is shown only at creation and rotation")
        let rotated = try await broker.call("POST", "/v1/webhooks/\(id)/secret", token: token)
        XCTAssertEqual(rotated.status, 200)
        XCTAssertNotEqual(rotated.json["secret"]?.string, secret)
        for path in ["/v1/webhooks/\(id)", "/v1/webhooks/\(id)/deliveries"] {
            let answer = try await broker.call("GET", path, token: other)
            XCTAssertEqual(answer.status, 404, "another tenant's endpoint: \(path)")
        }
        let answer1 = try await broker.call("DELETE", "/v1/webhooks/\(id)", token: other)
        XCTAssertEqual(answer1.status, 404)
        let answer2 = try await broker.call("GET", "/v1/webhooks/\(id)/deliveries", token: token)
        XCTAssertEqual(answer2.json["deliveries"]?.array.count, 0)
        let answer3 = try await broker.call("DELETE", "/v1/webhooks/\(id)", token: token)
        XCTAssertEqual(answer3.status, 204)
        let answer4 = try await broker.call("GET", "/v1/webhooks/\(id)", token: token)
        XCTAssertEqual(answer4.status, 404)
    }

    func testPendingAllocationsKnowTheirPlaceInTheQueue() async throws {
        let token = try await broker.tenant().token
        let one: JSONValue = ["computeClass": "general-purpose", "cpu": 1, "memoryGiB": 2, "replicas": 2]
        let queued: JSONValue = ["computeClass": "general-purpose", "cpu": 1, "memoryGiB": 2, "replicas": 2, "queue": true, "region": "a"]
        let active = try await broker.call("POST", "/v1/allocations", token: token, json: one)
        XCTAssertEqual(active.status, 201)
        let first = try await broker.call("POST", "/v1/allocations", token: token, json: queued)
        let second = try await broker.call("POST", "/v1/allocations", token: token, json: queued)
        XCTAssertEqual([first.status, second.status], [202, 202])
        // Pinned elsewhere, a request competes with nobody ahead (they are pinned to a).
        try await broker.region("b")
        try await broker.pool("b", "empty", cpu: 2, memory: 4, capacity: 0)
        let big = try await broker.call(
            "POST", "/v1/allocations", token: token,
            json: ["computeClass": "general-purpose", "cpu": 1, "memoryGiB": 2, "replicas": 1, "queue": true, "region": "b"])
        XCTAssertEqual(big.status, 202)

        let q1 = try await broker.call("GET", "/v1/allocations/\(first.json["id"]!.string!)/queue", token: token)
        XCTAssertEqual(q1.status, 200, q1.text)
        XCTAssertEqual(q1.json["position"], 1)
        XCTAssertEqual(q1.json["replicasAhead"], 0)
        XCTAssertEqual(q1.json["estimatedAdmissionAt"], .null, "no release in the last hour to estimate from")
        let q3 = try await broker.call("GET", "/v1/allocations/\(big.json["id"]!.string!)/queue", token: token)
        XCTAssertEqual(q3.json["position"], 1, "it competes only for b's pool: \(q3.text)")
        XCTAssertEqual(q3.json["pools"], ["b/empty"])

        // One release in the last hour: 2 ahead + 2 wanted at 1 per hour.
        let answer5 = try await broker.call("DELETE", "/v1/allocations/\(active.json["id"]!.string!)", token: token)
        XCTAssertEqual(answer5.status, 200)
        try await Task.sleep(for: .milliseconds(10))
        let q2 = try await broker.call("GET", "/v1/allocations/\(second.json["id"]!.string!)/queue", token: token)
        XCTAssertEqual(q2.status, 200, q2.text)
        XCTAssertEqual(q2.json["position"], 2)
        XCTAssertEqual(q2.json["replicasAhead"], 2)
        XCTAssertEqual(q2.json["releasesLastHour"], 2)
        let estimate = try XCTUnwrap(q2.json["estimatedAdmissionAt"]?.string)
        let at = try XCTUnwrap(ISO8601DateFormatter.withFractions.date(from: estimate))
        XCTAssertEqual(at.timeIntervalSinceNow, 2 * 3600, accuracy: 60, "(2 ahead + 2 wanted) / 2 per hour")

        let notPending = try await broker.call("GET", "/v1/allocations/\(active.json["id"]!.string!)/queue", token: token)
        XCTAssertEqual(notPending.status, 409)
        let stranger = try await broker.tenant("stranger").token
        let answer6 = try await broker.call("GET", "/v1/allocations/\(second.json["id"]!.string!)/queue", token: stranger)
        XCTAssertEqual(answer6.status, 404)
    }
}

extension ISO8601DateFormatter {
    static var withFractions: ISO8601DateFormatter {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }
}
