@testable import BrokerStore
import Foundation
import PostgresClient
import TestHarness
import TestSupport
import XCTest

/// Webhook claims through lanes (migration 11): cheap however many deliveries wait,
/// one delivery per allocation at a time, in order.
final class WebhookLaneTests: XCTestCase {
    var connection: PostgresConnection!
    var store: WebhookStore!
    let endpoint = UUID()

    override func setUpWithError() throws {
        let url = try TestDatabase.create()
        connection = try PostgresConnection.connect(PostgresConfiguration(url: url))
        store = WebhookStore(pool: PostgresPool(configuration: PostgresConfiguration(url: url), size: 2))
        let tenant = UUID()
        try connection.query("INSERT INTO tenants (id, name, token_hash) VALUES ($1, 'hooks', sha256('hooks'::bytea))", [tenant])
        try connection.query(
            "INSERT INTO webhook_endpoints (id, tenant_id, url, secret, cursor_xid) VALUES ($1, $2, 'http://sink/', 'whsec_AAAA', 0)",
            [endpoint, tenant])
    }

    /// `lanes` allocations with `perLane` pending deliveries each, counted into their lanes.
    func pending(lanes: Int, perLane: Int) throws {
        try connection.query(
            """
            WITH lanes AS (SELECT gen_random_uuid() AS allocation_id FROM generate_series(1, $2)),
            added AS (
                INSERT INTO webhook_deliveries (endpoint_id, message_id, allocation_id, event_type, payload)
                SELECT $1, 'evt_' || l.allocation_id || '_' || n, l.allocation_id, 'allocation.reserved', repeat('x', 300)
                FROM lanes l, generate_series(1, $3) n ORDER BY n
                RETURNING allocation_id
            )
            INSERT INTO webhook_lanes (endpoint_id, allocation_id, pending)
            SELECT $1, allocation_id, count(*) FROM added GROUP BY allocation_id
            """, [endpoint, lanes, perLane])
        try connection.query("ANALYZE webhook_deliveries")
        try connection.query("ANALYZE webhook_lanes")
    }

    /// Rows of lanes and deliveries a claim of 32 reads (the change in this backend's
    /// pg_stat_xact_user_tables across it, which may still hold earlier transactions'
    /// counts), with the claims it makes rolled back.
    func claimReads() throws -> Int {
        func read() throws -> Int {
            try connection.query(
                """
                SELECT coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0)), 0)::int AS n FROM pg_stat_xact_user_tables
                WHERE relname IN ('webhook_lanes', 'webhook_deliveries')
                """)[0].decode("n")
        }
        try connection.query("BEGIN")
        defer { _ = try? connection.query("ROLLBACK") }
        let before = try read()
        XCTAssertEqual(try connection.query("SELECT * FROM gpb_webhook_claim(32)").count, 32)
        return try read() - before
    }

    func testAClaimCostsTheSameWith40000DeliveriesPending() throws {
        try pending(lanes: 32, perLane: 1)
        let few = try claimReads()
        try pending(lanes: 40000, perLane: 1)
        let many = try claimReads()
        // Migration 11's first claim, one statement planned for an unknown limit, joined
        // every delivery by hash: 40,128 rows read here, 200 ms at 70,000 lanes.
        XCTAssertLessThan(many, 10 * 32, "a claim of 32 read \(many) rows with 40,032 deliveries pending (\(few) with 32)")
        print("WEBHOOK CLAIM: 32 deliveries claimed reading \(few) rows with 32 pending, \(many) with 40,032 pending")
    }

    func testOneDeliveryPerAllocationAtATimeInOrder() async throws {
        try pending(lanes: 3, perLane: 3)
        let first = try await store.claim(limit: 10)
        XCTAssertEqual(first.count, 3, "one per lane")
        let again = try await store.claim(limit: 10)
        XCTAssertEqual(again.count, 0, "claimed lanes wait for their delivery's outcome")
        let heads: [Int64] = try connection.query(
            "SELECT min(id) AS id FROM webhook_deliveries GROUP BY allocation_id ORDER BY 1").map { try $0.decode("id") }
        XCTAssertEqual(first.map(\.id).sorted(), heads, "each lane's oldest")

        try await store.record([
            .delivered(first[0].id, status: 204), .failed(first[1].id, status: 500, reason: "boom", retryIn: .seconds(3600)),
            .failed(first[2].id, status: nil, reason: "gone", retryIn: nil),
        ])
        try await store.record([.delivered(first[0].id, status: 204)])  // a second outcome of one attempt changes nothing
        let next = try await store.claim(limit: 10)
        XCTAssertEqual(next.count, 2, "the delivered and the failed lanes go on; the retried one waits an hour")
        let lanes: [Int] = try connection.query("SELECT pending FROM webhook_lanes ORDER BY pending").map { try $0.decode("pending") }
        XCTAssertEqual(lanes, [2, 2, 3])
        for claimed in next {
            let earlier: Int = try connection.query(
                """
                SELECT count(*)::int AS n FROM webhook_deliveries d JOIN webhook_deliveries c ON c.allocation_id = d.allocation_id
                WHERE c.id = $1 AND d.id < c.id AND d.status = 'pending'
                """, [claimed.id])[0].decode("n")
            XCTAssertEqual(earlier, 0, "nothing older of its allocation is still pending")
        }
        let status: String = try connection.query("SELECT status FROM webhook_endpoints")[0].decode("status")
        XCTAssertEqual(status, "failing", "a delivery out of retries marks its endpoint failing")
    }
}
