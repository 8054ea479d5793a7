import Foundation
import PostgresClient
import TestSupport
import XCTest

@testable import BrokerAPI

/// Issue 31, N4: an answer lost after the grants were committed (a 503, a dropped
/// connection) must not turn a retry into a second grant. A file sent without
/// `Idempotency-Key` is recorded under a key of its own, for a minute.
final class ManifestRetryTests: XCTestCase {
    var broker: TestBroker!
    var token: String!

    override func setUp() async throws {
        broker = try TestBroker()
        token = try await broker.tenant().token
        try await broker.region("cn-beijing")
        try await broker.pool("cn-beijing", "cpu", cpu: 4, memory: 8, capacity: 10)
    }

    override func tearDown() async throws {
        ManifestRoutes.answerFault.withLock { $0 = nil }
        await broker.stop()
    }

    func post(_ yaml: String = SeedYAML.cpuDefaultRegion, token: String? = nil) async throws -> TestBroker.Response {
        try await broker.call(
            "POST", "/v1/allocations/from-manifest", token: token ?? self.token, body: Array(yaml.utf8),
            headers: ["Content-Type": "application/yaml"])
    }

    func allocationIds(token: String? = nil) async throws -> [String] {
        let listed = try await broker.call("GET", "/v1/allocations", token: token ?? self.token)
        return (listed.json["allocations"]?.array ?? []).compactMap { $0["id"]?.stringValue }
    }

    func testARetryAfterTheAnswerFailedReplaysTheSameAllocations() async throws {
        ManifestRoutes.answerFault.withLock { $0 = { throw Problem.unavailable("the answer path failed after the commit") } }
        let lost = try await post()
        XCTAssertEqual(lost.status, 503, lost.text)
        let granted = try await allocationIds()
        XCTAssertEqual(granted.count, 1, "the grant was committed before the answer failed")

        ManifestRoutes.answerFault.withLock { $0 = nil }
        let retry = try await post()
        XCTAssertEqual(retry.status, 201, retry.text)
        XCTAssertEqual(retry.json["allocation"]?["id"]?.stringValue, granted[0], "the retry answers the first grant")
        let after = try await allocationIds()
        XCTAssertEqual(after, granted, "the retry granted nothing new")

        // The key is the tenant's own: another tenant's identical file is its own grant.
        let other = try await broker.tenant("other").token
        let theirs = try await post(token: other)
        XCTAssertEqual(theirs.status, 201, theirs.text)
        XCTAssertNotEqual(theirs.json["allocation"]?["id"]?.stringValue, granted[0])
        let report = try await LedgerCheck.run(broker)
        XCTAssertTrue(report.isEmpty, "ledger: \(report)")
    }

    func testTheSameFileAfterItsKeysLifetimeIsANewRequest() async throws {
        let first = try await post()
        XCTAssertEqual(first.status, 201, first.text)
        let aged = try await broker.pool.withConnection { c in
            try c.query(
                "UPDATE idempotency_keys SET created_at = now() - make_interval(secs => $1 + 1) RETURNING key",
                [ManifestRoutes.derivedKeyLifetimeSeconds]
            ).count
        }
        XCTAssertEqual(aged, 1, "one derived key recorded")
        let second = try await post()
        XCTAssertEqual(second.status, 201, second.text)
        XCTAssertNotEqual(second.json["allocation"]?["id"], first.json["allocation"]?["id"])
        let ids = try await allocationIds()
        XCTAssertEqual(ids.count, 2)
        // A changed file is a new request at once.
        let changed = try await post(SeedYAML.cpuDefaultRegion.replacingOccurrences(of: "replicas: 1", with: "replicas: 2"))
        XCTAssertEqual(changed.status, 201, changed.text)
        let all = try await allocationIds()
        XCTAssertEqual(all.count, 3)
    }
}
