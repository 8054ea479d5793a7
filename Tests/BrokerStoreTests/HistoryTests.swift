@testable import BrokerStore
import BrokerCore
import Foundation
import PostgresClient
import TestHarness
import TestSupport
import XCTest

/// History with an end (migration 12): verify from a checkpoint, retention that keeps
/// verify, counters and recent usage exact.
final class HistoryTests: XCTestCase {
    var url = ""
    var connection: PostgresConnection!
    var pool: PostgresPool!
    let tenant = UUID.timeOrdered()

    override func setUpWithError() throws {
        url = try TestDatabase.create()
        connection = try PostgresConnection.connect(PostgresConfiguration(url: url))
        pool = PostgresPool(configuration: try PostgresConfiguration(url: url), size: 4)
        // One region, one pool that releases at once (no warm instances unless a test says).
        try connection.executeScript(
            """
            INSERT INTO regions (id, kind, is_primary, vpc_id, vswitch_ids, security_group_id, state)
            VALUES ('a', 'serverless', true, 'vpc-a', '{vsw-a}', 'sg-a', 'active');
            INSERT INTO pools (region_id, id, compute_class, qos, cpu, memory_gib, instance_type, capacity,
                               price_per_hour, defer_scale_in_seconds)
            VALUES ('a', 'p', 'general-purpose', '{default}', 4, 16, 'ecs.g8i.xlarge', 100, 1, 0);
            INSERT INTO tenants (id, name, token_hash) VALUES ('\(tenant.lowercased)', 't', sha256('t-token'::bytea));
            """)
    }

    override func tearDown() async throws {
        await pool.close()
    }

    /// `count` allocations released `daysAgo` days ago, each with its released instance and
    /// reserved/released ledger rows (ids as the broker makes them: time-ordered).
    func addHistory(_ count: Int, daysAgo: Int) throws {
        try connection.query(
            """
            CREATE TEMP TABLE seeded AS
            SELECT gpb_uuidv7(at) AS id, at FROM (
                SELECT now() - make_interval(days => \(daysAgo)) - g * interval '1 millisecond' AS at
                FROM generate_series(1, \(count)) g ORDER BY g DESC) s
            """)
        try connection.query(
            """
            INSERT INTO allocations (id, tenant_id, status, request, replicas, placed_replicas, lease_seconds,
                                     created_at, updated_at)
            SELECT id, $1, 'released',
                   '{"shape":{"computeClass":"general-purpose","qos":"default","gpuCount":0,"cpu":1,"memoryGiB":2}}',
                   1, 0, 60, at, at + interval '1 hour'
            FROM seeded ORDER BY at
            """,
            [tenant])
        try connection.query(
            """
            INSERT INTO instances (id, allocation_id, region_id, pool_id, instance_type, gpu_count, cpu, memory_gib,
                                   vpc_id, vswitch_id, security_group_id, state, created_at, ended_at)
            SELECT gen_random_uuid(), id, 'a', 'p', 'ecs.g8i.xlarge', 0, 4, 16, 'vpc-a', 'vsw-a', 'sg-a', 'released',
                   at, at + interval '1 hour'
            FROM seeded ORDER BY at
            """)
        try connection.query(
            """
            INSERT INTO ledger (at, kind, region_id, pool_id, allocation_id, instance_id, delta, actor)
            SELECT i.created_at + k.after, k.kind, 'a', 'p', i.allocation_id, i.id, k.delta, 'history'
            FROM instances i JOIN seeded s ON s.id = i.allocation_id,
                 (VALUES ('reserved', 1, interval '0'), ('released', -1, interval '1 hour')) AS k (kind, delta, after)
            ORDER BY i.seq, k.delta DESC
            """)
        try connection.query("DROP TABLE seeded")
        try connection.query("ANALYZE")
    }

    /// A warm instance passed on: an allocation of 100 days ago took it new (+1) and left it
    /// idle (0); one of 2 days ago reused it (0) and released it for good (-1). Retention
    /// removes the first: the pool's remaining rows then add up to -1 without its +1.
    func addReusedInstance() throws {
        try connection.query(
            """
            WITH a AS (
                INSERT INTO allocations (id, tenant_id, status, request, replicas, placed_replicas, lease_seconds,
                                         created_at, updated_at)
                SELECT gpb_uuidv7(at), $1, 'released',
                       '{"shape":{"computeClass":"general-purpose","qos":"default","gpuCount":0,"cpu":1,"memoryGiB":2}}',
                       1, 0, 60, at, at
                FROM (VALUES (now() - interval '100 days'), (now() - interval '2 days')) t (at)
                RETURNING id, created_at
            ), i AS (
                INSERT INTO instances (id, allocation_id, region_id, pool_id, instance_type, gpu_count, cpu, memory_gib,
                                       vpc_id, vswitch_id, security_group_id, state, reused, created_at, ended_at)
                SELECT '00000000-0000-4000-8000-00000000000a', id, 'a', 'p', 'ecs.g8i.xlarge', 0, 4, 16, 'vpc-a',
                       'vsw-a', 'sg-a', 'released', created_at > now() - interval '3 days', created_at, created_at
                FROM a
                RETURNING allocation_id, id, reused, created_at
            )
            INSERT INTO ledger (at, kind, region_id, pool_id, allocation_id, instance_id, delta, actor)
            SELECT created_at + k.after, k.kind, 'a', 'p', allocation_id, id,
                   CASE WHEN reused THEN k.delta - 1 ELSE k.delta END, 'reuse'
            FROM i, (VALUES ('reserved', 1, interval '0'), ('released', 0, interval '1 hour')) AS k (kind, delta, after)
            """,
            [tenant])
    }

    func grant(_ replicas: Int = 1) async throws -> AllocationView {
        try await AllocationStore(pool: pool).create(
            tenantId: tenant,
            request: AllocationRequest(
                shape: ComputeShape(computeClass: .generalPurpose, cpu: 1, memoryGiB: 2), replicas: replicas, leaseSeconds: 600),
            actor: "test")
    }

    func count(_ sql: String) throws -> Int { try connection.query(sql)[0].decode("n") }

    func timed(_ body: () async throws -> LedgerVerifier.Report) async throws -> (LedgerVerifier.Report, Double) {
        let started = ContinuousClock.now
        let report = try await body()
        return (report, (ContinuousClock.now - started) / .milliseconds(1))
    }

    /// 100,000 ledger rows of history: the first verify adds them all up and records a
    /// checkpoint; the next reads only the rows written since; --full reads them all again.
    func testVerifyAfterACheckpointReadsOnlyNewerLedgerRows() async throws {
        try addHistory(50_000, daysAgo: 10)
        _ = try await grant(2)
        let verifier = LedgerVerifier(pool: pool)
        let (first, firstMs) = try await timed { try await verifier.verify() }
        XCTAssertEqual(first.problems, [])
        XCTAssertEqual(first.startedFrom, 0)
        XCTAssertEqual(first.ledgerRowsRead, 100_002)
        let checkpoint = try XCTUnwrap(first.recorded)

        let later = try await grant(1)
        _ = try await AllocationStore(pool: pool).release(tenantId: tenant, id: later.id.uuid, actor: "test")
        let (second, secondMs) = try await timed { try await verifier.verify() }
        XCTAssertEqual(second.problems, [])
        XCTAssertEqual(second.startedFrom, checkpoint)
        XCTAssertEqual(second.ledgerRowsRead, 2, "the grant's reserved row and the release's row")
        XCTAssertEqual(second.allocationsChecked, 1, "the live allocation, not the 50,001 ended ones")
        XCTAssertGreaterThan(try XCTUnwrap(second.recorded), checkpoint)

        let (full, fullMs) = try await timed { try await verifier.verify(full: true) }
        XCTAssertEqual(full.problems, [])
        XCTAssertEqual(full.ledgerRowsRead, 100_004)
        XCTAssertEqual(full.allocationsChecked, 50_002)
        print("verify with 100,000 ledger rows of history: \(Int(firstMs)) ms without a checkpoint, \(Int(secondMs)) ms after one (\(second.ledgerRowsRead) rows read), \(Int(fullMs)) ms --full")

        // A ledger row no counter agrees with, written after the checkpoint: found, and the
        // checkpoint stays where it was.
        try connection.query(
            "INSERT INTO ledger (kind, region_id, pool_id, delta, actor) VALUES ('reserved', 'a', 'p', 1, 'intruder')")
        let broken = try await verifier.verify()
        XCTAssertEqual(broken.problems, ["a/p: allocated counter 2, live instances 2, ledger sum 3"])
        XCTAssertNil(broken.recorded)
        let brokenFull = try await verifier.verify(full: true)
        XCTAssertEqual(brokenFull.problems, ["a/p: allocated counter 2, live instances 2, ledger sum 3"])
    }

    /// A checkpoint whose sums were tampered with is what a full verify catches.
    func testFullVerifyChecksTheCheckpointItself() async throws {
        try addHistory(10, daysAgo: 1)
        let clean = try await LedgerVerifier(pool: pool).verify()
        XCTAssertEqual(clean.problems, [])
        try connection.query("UPDATE ledger_checkpoint_pools SET delta_sum = delta_sum + 1")
        let problems = try await LedgerVerifier(pool: pool).verify(full: true).problems
        // The inventory's events (migration 11) take numbers of the ledger's sequence too.
        let last: Int64 = try connection.query("SELECT max(seq) AS n FROM ledger")[0].decode("n")
        XCTAssertEqual(problems.count, 1)
        XCTAssertTrue(problems[0].hasPrefix("a/p: checkpoint at ledger row \(last) sums 1, the ledger up to it 0"), problems[0])
    }

    /// A ledger row written before a committed one but committed after it must not fall
    /// below a checkpoint unread: while a ledger write is in flight, verify checks but
    /// records no checkpoint, and the row counts once it commits.
    func testNoCheckpointWhileALedgerWriteIsInFlight() async throws {
        let slow = try PostgresConnection.connect(PostgresConfiguration(url: url))
        try slow.query("BEGIN")
        try slow.query("INSERT INTO ledger (kind, region_id, pool_id, delta, actor) VALUES ('reserved', 'a', 'p', 1, 'slow')")
        try connection.query("INSERT INTO ledger (kind, delta, actor) VALUES ('renewed', 0, 'fast')")
        let during = try await LedgerVerifier(pool: pool).verify()
        XCTAssertEqual(during.problems, [])
        XCTAssertNil(during.recorded, "a write is in flight")
        try slow.query("COMMIT")
        let after = try await LedgerVerifier(pool: pool).verify()
        XCTAssertEqual(after.problems, ["a/p: allocated counter 0, live instances 0, ledger sum 1"])
    }

    /// Outside --full, allocations are checked from the live side (live allocations and the
    /// allocations of running instances): an ended allocation with a running instance is
    /// still found.
    func testVerifyFindsAnEndedAllocationWithARunningInstance() async throws {
        try addHistory(3, daysAgo: 1)
        let clean = try await LedgerVerifier(pool: pool).verify()
        XCTAssertEqual(clean.problems, [])
        let ended: String = try connection.query("SELECT id::text AS id FROM allocations ORDER BY seq LIMIT 1")[0].decode("id")
        try connection.query("UPDATE instances SET state = 'running', ended_at = NULL WHERE allocation_id = $1::uuid", [ended])
        let problems = try await LedgerVerifier(pool: pool).verify().problems
        XCTAssertTrue(problems.contains("allocation \(ended) (released): placedReplicas 0, running instances 1"), "\(problems)")
    }

    /// Retention removes ended allocations older than the setting, in batches, and keeps
    /// what must stay: recent history, live allocations, warm instances; verify (fast and
    /// full), tenant counters and a recent usage report come out the same.
    func testRetentionRemovesOldEndedAllocationsAndKeepsVerifyClean() async throws {
        try addHistory(1000, daysAgo: 100)
        try addHistory(10, daysAgo: 2)
        try addReusedInstance()
        let live = try await grant(2)
        try connection.query("UPDATE allocations SET created_at = now() - interval '200 days' WHERE id = $1", [live.id.uuid])
        // An old ended allocation whose instance is warm (idle): it stays while the instance does.
        try connection.query("UPDATE pools SET defer_scale_in_seconds = 86400")
        let warm = try await grant(1)
        _ = try await AllocationStore(pool: pool).release(tenantId: tenant, id: warm.id.uuid, actor: "test")
        try connection.query(
            "UPDATE allocations SET created_at = now() - interval '150 days', updated_at = now() - interval '150 days' WHERE id = $1",
            [warm.id.uuid])
        let usage = UsageStore(pool: pool)
        let recent = UsageQuery(from: Date().addingTimeInterval(-3 * 86400), to: Date())
        let usageBefore = try await usage.report(recent, tenantId: tenant).total
        let countersBefore = try count("SELECT instances AS n FROM tenant_usage")

        // Nothing is covered by a checkpoint yet: the ledger refuses to lose rows.
        XCTAssertThrowsError(try connection.query("DELETE FROM ledger WHERE actor = 'history'")) { error in
            XCTAssertEqual((error as? PostgresError)?.sqlState?.rawValue, "GB002")
        }
        // The setup's region and pool events made old, and one recent pool report.
        try connection.query("UPDATE inventory_events SET at = now() - interval '100 days'")
        try connection.query("UPDATE pools SET capacity = 101")
        let removed = try await HistoryRetention(pool: pool, retain: .seconds(90 * 86400)).step(batch: 300)
        XCTAssertEqual(removed, 1001)
        XCTAssertEqual(try count("SELECT count(*)::int AS n FROM inventory_events"), 1)
        XCTAssertEqual(try count("SELECT count(*)::int AS n FROM inventory_events WHERE type = 'pool.changed'"), 1)
        XCTAssertEqual(try count("SELECT count(*)::int AS n FROM allocations"), 13)
        XCTAssertEqual(try count("SELECT count(*)::int AS n FROM ledger WHERE actor = 'history'"), 20)
        XCTAssertEqual(try count("SELECT sum(delta)::int AS n FROM ledger WHERE actor = 'reuse'"), -1)
        XCTAssertEqual(try count("SELECT row_count::int AS n FROM ledger_retired"), 2002)
        XCTAssertEqual(try count("SELECT delta_sum::int AS n FROM ledger_retired"), 1)
        XCTAssertEqual(try count("SELECT count(*)::int AS n FROM allocations WHERE id IN ($1, $2)".replacingOccurrences(
            of: "$1", with: "'\(live.id)'").replacingOccurrences(of: "$2", with: "'\(warm.id)'")), 2)
        let again = try await HistoryRetention(pool: pool, retain: .seconds(90 * 86400)).step()
        XCTAssertEqual(again, 0)

        let fast = try await LedgerVerifier(pool: pool).verify()
        XCTAssertEqual(fast.problems, [])
        let full = try await LedgerVerifier(pool: pool).verify(full: true)
        XCTAssertEqual(full.problems, [])
        XCTAssertEqual(try count("SELECT instances AS n FROM tenant_usage"), countersBefore)
        let usageAfter = try await usage.report(recent, tenantId: tenant).total
        XCTAssertEqual(usageAfter.instanceHours, usageBefore.instanceHours, accuracy: 1e-9)

        // Rows newer than the checkpoint and rows of live allocations stay; updates are refused as before.
        try connection.query(
            "INSERT INTO ledger (kind, allocation_id, delta, actor) VALUES ('renewed', $1, 0, 'test')", [warm.id.uuid])
        XCTAssertThrowsError(try connection.query("DELETE FROM ledger WHERE actor = 'test' AND kind = 'renewed'"))
        XCTAssertThrowsError(try connection.query("DELETE FROM ledger WHERE allocation_id = $1", [live.id.uuid]))
        XCTAssertThrowsError(try connection.query("UPDATE ledger SET delta = 0 WHERE actor = 'history'"))
    }
}
