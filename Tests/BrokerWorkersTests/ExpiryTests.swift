import BrokerStore
import Foundation
import PostgresClient
import Synchronization
import TestHarness
import TestSupport
import XCTest

/// Lease expiry in set-based batches until none is due, under grant load.
final class ExpiryTests: XCTestCase {
    var url = ""
    var connection: PostgresConnection!
    let tenant = UUID()
    let regions = (0..<10).map { String(format: "r%02d", $0) }

    override func setUpWithError() throws {
        url = try TestDatabase.create()
        connection = try PostgresConnection.connect(PostgresConfiguration(url: url))
        for (n, region) in regions.enumerated() {
            try connection.query(
                """
                INSERT INTO regions (id, kind, is_primary, vpc_id, vswitch_ids, security_group_id, state)
                VALUES ($1, 'serverless', $2, 'vpc', '{vsw}', 'sg', 'active')
                """,
                [region, n == 0])
            // Half the pools keep expired instances warm, half release them at once.
            try connection.query(
                """
                INSERT INTO pools (region_id, id, compute_class, qos, cpu, memory_gib, instance_type, capacity,
                                   price_per_hour, defer_scale_in_seconds)
                VALUES ($1, 'p', 'general-purpose', '{default}', 2, 4, 'ecs.g8i.large', 100000, 1, $2)
                """,
                [region, n % 2 == 0 ? 600 : 0])
        }
        try connection.query(
            "INSERT INTO tenants (id, name, token_hash) VALUES ($1, 'leases', sha256('leases-token'::bytea))", [tenant])
    }

    /// `count` grants in one `gpb_grant_batch` statement, one replica each, spread over the pools.
    func grantSQL(_ count: Int) -> String {
        """
        SELECT count(*)::int AS n FROM gpb_grant_batch(ARRAY(
            SELECT ROW(gen_random_uuid(), '\(tenant)', 'active',
                       '{"shape":{"computeClass":"general-purpose","qos":"default","gpuCount":0,"cpu":2,"memoryGiB":4}}',
                       1, 1, '{}', '[]', 3600, NULL,
                       ARRAY[ROW(format('r%s', lpad((g % 10)::text, 2, '0')), 'p', 1, NULL, '{vsw}')::gpb_placement],
                       'test', md5(gpb_tenant_policies('\(tenant)')::text))::gpb_planned_grant
            FROM generate_series(1, \(count)) g))
        """
    }

    /// 10,000 leases due at once all expire in one pass of the reconciler, while grant
    /// batches on the same pools keep coming: no deadlock, and `verify` stays clean.
    func testTenThousandLeasesExpireInOnePassWithoutDeadlocks() async throws {
        let granted: Int = try connection.query(grantSQL(10_000))[0].decode("n")
        XCTAssertEqual(granted, 10_000)
        try connection.query("UPDATE allocations SET lease_expires_at = now() - interval '1 second'")

        // Grants on every pool meanwhile, on their own connection and thread (libpq blocks).
        let load = GrantLoad(url: url, sql: grantSQL(20))
        Thread.detachNewThread { load.run() }
        let pool = PostgresPool(configuration: try PostgresConfiguration(url: url), size: 2)
        let started = ContinuousClock.now
        let expired = try await MaintenanceStore(pool: pool).expireLeases()
        let elapsed = ContinuousClock.now - started
        load.state.withLock { $0.stop = true }
        while !load.state.withLock({ $0.done }) { try await Task.sleep(for: .milliseconds(10)) }
        let (batches, failures) = load.state.withLock { ($0.batches, $0.failures) }
        print("expired \(expired) leases in \(elapsed) while \(batches) grant batches ran")

        XCTAssertEqual(expired, 10_000, "every due lease in one pass")
        XCTAssertEqual(failures, [], "grant batches never deadlocked with expiry")
        XCTAssertGreaterThan(batches, 0)
        let expiredRows: Int = try connection.query(
            "SELECT count(*)::int AS n FROM ledger WHERE kind = 'expired'")[0].decode("n")
        XCTAssertEqual(expiredRows, 10_000)
        let problems = try await LedgerVerifier(pool: pool).verify().problems
        XCTAssertEqual(problems, [])
        await pool.close()
    }
}

/// Grant batches in a loop on a connection of its own until told to stop, errors collected.
final class GrantLoad: Sendable {
    struct State {
        var stop = false
        var done = false
        var batches = 0
        var failures: [String] = []
    }

    let state = Mutex(State())
    let url: String
    let sql: String

    init(url: String, sql: String) {
        self.url = url
        self.sql = sql
    }

    func run() {
        defer { state.withLock { $0.done = true } }
        do {
            let connection = try PostgresConnection.connect(PostgresConfiguration(url: url))
            while !state.withLock({ $0.stop }) {
                do {
                    _ = try connection.query(sql)
                    state.withLock { $0.batches += 1 }
                } catch {
                    state.withLock { $0.failures.append(String(reflecting: error)) }
                }
            }
        } catch {
            state.withLock { $0.failures.append(String(reflecting: error)) }
        }
    }
}
