@testable import BrokerStore
import Foundation
import PostgresClient
import TestHarness
import TestSupport
import XCTest

/// Issue 31, N5: 2,000 idle webhook endpoints took PostgreSQL from 0.5 % to 39 % of a
/// core with no events at all: every dispatch (about three a second) rewrote every
/// endpoint's cursor to the feed's horizon, which any transaction moves.
final class WebhookIdleCostTests: XCTestCase {
    func testIdleEndpointsAreNeitherWrittenNorLockedByDispatch() async throws {
        let url = try TestDatabase.create()
        let connection = try PostgresConnection.connect(PostgresConfiguration(url: url))
        let store = WebhookStore(pool: PostgresPool(configuration: PostgresConfiguration(url: url), size: 2))
        let tenant = UUID()
        try connection.query("INSERT INTO tenants (id, name, token_hash) VALUES ($1, 'hooks', sha256('hooks'::bytea))", [tenant])
        try connection.query(
            """
            INSERT INTO webhook_endpoints (id, tenant_id, url, secret, cursor_xid)
            SELECT gen_random_uuid(), $1, 'https://sink.example/' || n, 'whsec_AAAA', gpb_event_horizon()
            FROM generate_series(1, 2000) n
            """, [tenant])
        // Row versions and lockers: an UPDATE changes xmin, a FOR UPDATE lock sets xmax.
        func versions() throws -> [String] {
            try connection.query("SELECT xmin::text || '/' || xmax::text AS v FROM webhook_endpoints ORDER BY id").map { try $0.decode("v") }
        }
        let before = try versions()
        let started = ContinuousClock.now
        for _ in 0..<10 {
            try connection.query("SELECT txid_current()")  // other work moves the horizon
            let added = try await store.dispatch()
            XCTAssertEqual(added, 0)
        }
        let took = (ContinuousClock.now - started) / 10
        XCTAssertEqual(try versions(), before, "idle endpoints were written or locked by dispatch")
        XCTAssertLessThan(took, .milliseconds(20), "a dispatch with nothing to send")
        print("N5: dispatch over 2,000 idle endpoints \(took) a call, no endpoint written")
    }
}
