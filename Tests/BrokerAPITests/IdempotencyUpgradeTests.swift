import BrokerCore
import Foundation
import JSON
import PostgresClient
import TestSupport
import XCTest

/// A key recorded by the build before the JSON module, retried after an upgrade: its
/// request was hashed as Foundation wrote it (slashes escaped) and its answer stored with
/// Foundation's dates (seconds since 2001). It still replays its allocation.
final class IdempotencyUpgradeTests: XCTestCase {
    func testAKeyRecordedByThePreviousBuildReplaysItsAllocation() async throws {
        let broker = try TestBroker()
        try await broker.region("a")
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 5)
        let (token, tenantId) = try await broker.tenant()
        let body: JSONValue = [
            "computeClass": "general-purpose", "cpu": 1, "memoryGiB": 2, "replicas": 1,
            "labels": ["app.kubernetes.io/name": "web"],
        ]
        let first = try await broker.call("POST", "/v1/allocations", token: token, json: body)
        XCTAssertEqual(first.status, 201)

        let previous = JSONEncoder()
        previous.outputFormatting = [.sortedKeys]
        let fingerprint = String(decoding: try previous.encode(try AllocationRequest.parse(body)), as: UTF8.self)
        XCTAssertTrue(fingerprint.contains(#"app.kubernetes.io\/name"#))
        var answer = first.json.objectValue!
        for member in ["createdAt", "updatedAt", "leaseExpiresAt"] { answer[member] = .number(786_000_000.25) }
        let connection = try PostgresConnection.connect(try PostgresConfiguration(url: broker.databaseURL))
        try connection.query(
            """
            INSERT INTO idempotency_keys (tenant_id, key, request_hash, response, allocation_id)
            VALUES ($1, 'before-upgrade', sha256(convert_to($2, 'UTF8')), $3, $4)
            """,
            [UUID(uuidString: tenantId)!, fingerprint, JSONValue.object(answer).jsonText, UUID(uuidString: first.json["id"]!.stringValue!)!])

        let replay = try await broker.call(
            "POST", "/v1/allocations", token: token, json: body, headers: ["Idempotency-Key": "before-upgrade"])
        XCTAssertEqual(replay.status, 201)
        XCTAssertEqual(replay.json["id"], first.json["id"])
        XCTAssertEqual(replay.json["createdAt"], first.json["createdAt"])
        var other = body.objectValue!
        other["replicas"] = 2
        let reused = try await broker.call(
            "POST", "/v1/allocations", token: token, json: .object(other), headers: ["Idempotency-Key": "before-upgrade"])
        XCTAssertEqual(reused.status, 422)
        await broker.stop()
    }
}
