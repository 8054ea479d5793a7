import BrokerCore
import BrokerEvents
import BrokerStore
import Foundation
import JSON
import PostgresClient
import TestHarness
import TestSupport
import XCTest

/// The JSON a client or a webhook receiver gets, as a live broker writes it, matches
/// its schema in openapi/openapi.yaml, checked by a real JSON Schema validator
/// (`jsonschema` from scripts/test-venv, through scripts/openapi-shapes.py): problems
/// of every kind the tests can provoke, allocation events, the event feed with
/// inventory events, webhook payloads and a watch stream's last event.
final class PublicShapeTests: XCTestCase {
    struct Body {
        var what: String
        var schema: String
        var json: JSONValue
    }

    var broker: TestBroker!

    override func setUp() async throws {
        broker = try TestBroker()
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func testEveryPublicBodyMatchesItsOpenAPISchema() async throws {
        try await broker.region("a", primary: true)
        try await broker.pool("a", "t4", series: "T4", capacity: 2)
        let tenant = try await broker.tenant("team", quota: ["instances": 3])
        let webhooks = WebhookStore(pool: broker.pool)
        for (token, types) in [(tenant.token, []), (broker.adminToken, EventTypes.inventory)] {
            let endpoint = try await broker.call(
                "POST", "/v1/webhooks", token: token,
                json: ["url": "https://203.0.113.7/hooks", "eventTypes": .array(types.map(JSONValue.string))])
            XCTAssertEqual(endpoint.status, 201, endpoint.text)
        }
        try await broker.pool("a", "t4", series: "T4", capacity: 10)

        var bodies: [Body] = []
        func expect(_ what: String, _ response: TestBroker.Response, _ status: Int, _ schema: String = "Problem") {
            XCTAssertEqual(response.status, status, "\(what): \(response.text)")
            bodies.append(Body(what: what, schema: schema, json: response.json))
        }
        let gpu: JSONValue = ["computeClass": "gpu", "gpuSeries": ["T4"], "gpuCount": 1, "cpu": 2, "memoryGiB": 8, "replicas": 1]
        let granted = try await broker.call("POST", "/v1/allocations", token: tenant.token, json: gpu, headers: ["Idempotency-Key": "k1"])
        expect("a grant", granted, 201, "Allocation")
        let id = try XCTUnwrap(granted.json["id"]?.stringValue)
        expect("renewed", try await broker.call("POST", "/v1/allocations/\(id)/renew", token: tenant.token, json: [:]), 200, "Allocation")
        expect("released", try await broker.call("DELETE", "/v1/allocations/\(id)", token: tenant.token), 200, "Allocation")
        expect("its ledger rows", try await broker.call("GET", "/v1/allocations/\(id)/events", token: tenant.token), 200, "EventList")
        expect("the admin's feed", try await broker.call("GET", "/v1/events", token: broker.adminToken), 200, "EventPage")
        let share: JSONValue = ["cohort": "lab", "resources": ["gpu:T4": ["guaranteed": 2, "borrowingLimit": 1]]]
        expect("a tenant's share", try await broker.call(
            "PUT", "/v1/admin/tenants/\(tenant.id)/share", token: broker.adminToken, json: share), 200, "TenantShare")
        expect("where a tenant stands", try await broker.call("GET", "/v1/shares", token: tenant.token), 200, "ShareReport")
        expect("a share refused", try await broker.call(
            "PATCH", "/v1/admin/tenants/\(tenant.id)/share", token: broker.adminToken,
            json: ["resources": ["gpu:T4": ["guaranteed": 100]]]), 409)
        let elsewhere = gpu.merging(["gpuSeries": ["A100"], "queue": true])
        expect("queued, with alternatives", try await broker.call(
            "POST", "/v1/allocations", token: tenant.token, json: elsewhere), 202, "Allocation")
        XCTAssertEqual(bodies.last?.json["alternatives"]?.arrayValue?.count, 1, "the T4 fits now")
        expect("a dry run that would queue", try await broker.call(
            "POST", "/v1/allocations?dryRun=true", token: tenant.token, json: elsewhere), 200, "DryRun")
        expect("a dry run that would be granted", try await broker.call(
            "POST", "/v1/allocations?dryRun=true", token: tenant.token, json: gpu), 200, "DryRun")
        expect("a dry run over the quota", try await broker.call(
            "POST", "/v1/allocations?dryRun=true", token: tenant.token, json: gpu.merging(["replicas": 4])), 200, "DryRun")

        expect("malformed JSON", try await broker.call(
            "POST", "/v1/allocations", token: tenant.token, body: Array("{".utf8), headers: ["Content-Type": "application/json"]), 400)
        expect("no token", try await broker.call("GET", "/v1/allocations"), 401)
        expect("a tenant on an admin route", try await broker.call("GET", "/v1/admin/tenants", token: tenant.token), 403)
        expect("over the quota", try await broker.call(
            "POST", "/v1/allocations", token: tenant.token, json: gpu.merging(["replicas": 4])), 403)
        expect("unknown allocation", try await broker.call(
            "GET", "/v1/allocations/00000000-0000-4000-8000-000000000000", token: tenant.token), 404)
        expect("a method the path lacks", try await broker.call("PATCH", "/v1/regions", token: tenant.token), 405)
        expect("no capacity", try await broker.call(
            "POST", "/v1/allocations", token: tenant.token, json: gpu.merging(["gpuSeries": ["A100"]])), 409)
        expect("too large", try await broker.call(
            "POST", "/v1/allocations", token: tenant.token, body: Array(repeating: 32, count: 1_100_000),
            headers: ["Content-Type": "application/json"]), 413)
        expect("a form", try await broker.call(
            "POST", "/v1/allocations", token: tenant.token, body: Array("a=b".utf8),
            headers: ["Content-Type": "application/x-www-form-urlencoded"]), 415)
        expect("invalid fields", try await broker.call(
            "POST", "/v1/allocations", token: tenant.token, json: gpu.merging(["replicas": 0, "extra": 1])), 422)
        expect("a key reused", try await broker.call(
            "POST", "/v1/allocations", token: tenant.token, json: gpu.merging(["replicas": 2]), headers: ["Idempotency-Key": "k1"]), 422)

        let dispatched = try await webhooks.dispatch()
        XCTAssertGreaterThan(dispatched, 0)
        let connection = try PostgresConnection.connect(PostgresConfiguration(url: broker.databaseURL))
        for row in try connection.query("SELECT event_type, payload FROM webhook_deliveries ORDER BY id") {
            let type: String = try row.decode("event_type")
            bodies.append(Body(what: "webhook \(type)", schema: type.hasPrefix("allocation.") ? "FeedEvent" : "InventoryEvent",
                               json: try JSONValue.parse(try row.decode("payload", as: String.self))))
        }
        XCTAssertTrue(bodies.contains { $0.what == "webhook pool.changed" }, "the admin's endpoint got the pool change")
        bodies.append(Body(what: "a stream's end", schema: "StreamEnd",
                           json: try JSONValue.parse(EventBodies.streamEnd(reason: "the broker is shutting down"))))

        let failures = try Self.mismatches(bodies)
        XCTAssertEqual(failures, [], "bodies that do not match their schema")
    }

    /// The validator's complaints, one per line; empty when every body matches.
    static func mismatches(_ bodies: [Body]) throws -> [String] {
        guard let python = TestPython.path else {
            throw TestSetupError("no Python with jsonschema: run scripts/test-venv (scripts/test does)")
        }
        let root = OpenAPIContractTests.repositoryRoot
        let input = NSTemporaryDirectory() + "gpb-shapes-\(UUID().uuidString).jsonl"
        defer { unlink(input) }
        let lines = bodies.map { body in
            JSONValue.object(["what": .string(body.what), "schema": .string(body.schema), "body": body.json]).jsonText
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: input, atomically: true, encoding: .utf8)
        let (status, output) = try runTool(
            python, [root.appendingPathComponent("scripts/openapi-shapes.py").path,
                     root.appendingPathComponent("openapi/openapi.yaml").path, input])
        let complaints = output.split(separator: "\n").map(String.init).filter { !$0.hasSuffix("not matching their schema") }
        XCTAssertTrue(output.contains("\(bodies.count) bodies checked"), output)
        return status == 0 ? [] : complaints
    }
}

extension JSONValue {
    /// The object with `members` set over its own.
    func merging(_ members: [String: JSONValue]) -> JSONValue {
        .object((objectValue ?? [:]).merging(members) { _, new in new })
    }
}
