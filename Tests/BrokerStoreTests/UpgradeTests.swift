@testable import BrokerStore
import BrokerCore
import Foundation
import JSON
import PostgresClient
import TestHarness
import TestSupport
import XCTest

/// Databases built and filled at an older schema (Tests/fixtures/upgrade, written by
/// scripts/upgrade-fixtures from git) upgraded to head: the ledger verifies in full,
/// idempotent replays still answer, usage and spend stay what they were, and grants work.
final class UpgradeTests: XCTestCase {
    let tenant = UUID(uuidString: "00000000-0000-0000-0000-0000000000a1")!
    let budgeted = UUID(uuidString: "00000000-0000-0000-0000-0000000000a2")!
    let kept = UUID(uuidString: "00000000-0000-0000-0000-0000000000b1")!

    func testFromTheSchemaOf9a6cd87() async throws {
        try await upgrade(from: "9a6cd87", newerThanMigration9: false)
    }

    /// Versions 1-6 and 8-12: budgets, webhooks with deliveries, a verify checkpoint.
    func testFromTheSchemaRightAfterMigration9() async throws {
        try await upgrade(from: "c761bcd", newerThanMigration9: true)
    }

    /// The request of the allocation whose idempotency key must replay after the upgrade.
    var keptRequest: AllocationRequest {
        AllocationRequest(shape: ComputeShape(computeClass: .generalPurpose, cpu: 2, memoryGiB: 4), replicas: 2, leaseSeconds: 3600)
    }

    func upgrade(from rev: String, newerThanMigration9: Bool) async throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("fixtures/upgrade/schema-\(rev).sql")
        let name = "gpubroker_upgrade_\(rev)_\(UUID().uuidString.prefix(6).lowercased())"
        try TestDatabase.connect().executeScript("CREATE DATABASE \(name)")
        let url = try TestDatabase.url(for: name)
        let c = try PostgresConnection.connect(PostgresConfiguration(url: url))
        try c.executeScript(try String(contentsOf: fixture, encoding: .utf8))
        try fill(c, newerThanMigration9: newerThanMigration9)
        let before = try measures(c, newerThanMigration9: newerThanMigration9)

        let old = try Self.versions(in: fixture)
        XCTAssertEqual(try Schema.migrate(c), Schema.migrations.map(\.version).filter { !old.contains($0) })
        XCTAssertEqual(try Schema.migrate(c), [], "a second migrate applies nothing")

        let after = try measures(c, newerThanMigration9: newerThanMigration9)
        XCTAssertEqual(after.ledger, before.ledger, "the ledger's sums per pool")
        XCTAssertEqual(after.live, before.live, "live instances per pool")
        if newerThanMigration9 {
            XCTAssertEqual(after.usage, before.usage, "usage counters")
            XCTAssertEqual(after.spend, before.spend, "budget counters")
            XCTAssertEqual(after.charged, before.charged, "charged seconds and cost")
            XCTAssertEqual(after.deliveries, before.deliveries, "webhook deliveries and their lanes")
        } else {
            // Migration 5 counted what runs: 2 + 1 replicas of 2 CPUs and 4 GiB.
            XCTAssertEqual(after.usage, ["\(tenant.lowercased): 3 0 6 12"])
        }

        let pool = PostgresPool(configuration: PostgresConfiguration(url: url), size: 2)
        let report = try await LedgerVerifier(pool: pool).verify(full: true)
        XCTAssertTrue(report.ok, "verify --full: \(report.problems)")
        let store = AllocationStore(pool: pool)
        let replay = try await store.create(tenantId: tenant, request: keptRequest, actor: "tenant:t", idempotencyKey: "k1")
        XCTAssertEqual(replay.id.uuid, kept, "the idempotency key recorded before the upgrade replays its answer")
        let fresh = try await store.create(tenantId: tenant, request: keptRequest, actor: "tenant:t")
        XCTAssertEqual(fresh.placedReplicas, 2, "and a new grant goes through the new grant function")
        let again = try await LedgerVerifier(pool: pool).verify(full: true)
        XCTAssertTrue(again.ok, "\(again.problems)")
        await pool.close()
    }

    /// Allocations granted by that schema's own gpb_grant, one released as the broker
    /// released, an idempotency key with its answer; after migration 9 also a budgeted
    /// tenant's grant, a webhook endpoint with deliveries and a verify checkpoint.
    func fill(_ c: PostgresConnection, newerThanMigration9: Bool) throws {
        let request = String(decoding: StoreJSON.bytes(keptRequest), as: UTF8.self)
        func grant(_ id: String, tenant: UUID, count: Int) -> String {
            """
            SELECT count(*) FROM gpb_grant(
                '{"id": "\(id)", "tenantId": "\(tenant.lowercased)", "status": "active", "request": \(request),
                  "replicas": \(count), "placedReplicas": \(count), "labels": {}, "decisions": [], "leaseSeconds": 3600}',
                '[{"region": "a", "pool": "p", "count": \(count), "unit": null, "vSwitches": ["vsw-a", "vsw-a"]}]', 'tenant:t');
            """
        }
        try c.executeScript(
            """
            INSERT INTO regions (id, kind, is_primary, vpc_id, vswitch_ids, security_group_id, state)
            VALUES ('a', 'serverless', true, 'vpc-a', '{vsw-a}', 'sg-a', 'active');
            INSERT INTO pools (region_id, id, compute_class, qos, cpu, memory_gib, instance_type, capacity, price_per_hour)
            VALUES ('a', 'p', 'general-purpose', '{default}', 2, 4, 'ecs.g8i.large', 10, 1.5);
            INSERT INTO tenants (id, name, token_hash) VALUES ('\(tenant.lowercased)', 't', sha256('t'::bytea));
            \(grant(kept.lowercased, tenant: tenant, count: 2))
            \(grant("00000000-0000-0000-0000-0000000000b2", tenant: tenant, count: 1))
            \(grant("00000000-0000-0000-0000-0000000000b3", tenant: tenant, count: 1))
            UPDATE instances SET state = 'released', ended_at = clock_timestamp() WHERE allocation_id = '00000000-0000-0000-0000-0000000000b2';
            INSERT INTO ledger (kind, region_id, pool_id, allocation_id, instance_id, delta, actor)
            SELECT 'released', region_id, pool_id, allocation_id, id, -1, 'tenant:t' FROM instances
            WHERE allocation_id = '00000000-0000-0000-0000-0000000000b2';
            UPDATE pools SET allocated = allocated - 1;
            UPDATE allocations SET status = 'released', placed_replicas = 0, lease_expires_at = NULL
            WHERE id = '00000000-0000-0000-0000-0000000000b2';
            """)
        let answer = AllocationView(
            id: ResourceID(kept), status: .active, replicas: 2, placedReplicas: 2, instances: [], leaseSeconds: 3600,
            leaseExpiresAt: Date(), queueDeadline: nil, createdAt: Date(), updatedAt: Date(), labels: [:], decisions: [],
            request: keptRequest)
        try c.query(
            """
            INSERT INTO idempotency_keys (tenant_id, key, request_hash, response, allocation_id)
            VALUES ($1, 'k1', sha256(convert_to($2, 'UTF8')), $3, $4)
            """,
            [tenant, AllocationStore.fingerprint(keptRequest), String(decoding: StoreJSON.bytes(answer), as: UTF8.self), kept])
        guard newerThanMigration9 else { return }
        try c.executeScript(
            """
            INSERT INTO tenants (id, name, token_hash) VALUES ('\(budgeted.lowercased)', 'b', sha256('b'::bytea));
            UPDATE tenants SET quota = '{"spendPerMonth": 1000}' WHERE id = '\(budgeted.lowercased)';
            \(grant("00000000-0000-0000-0000-0000000000b4", tenant: budgeted, count: 1))
            INSERT INTO webhook_endpoints (id, tenant_id, url, secret, cursor_xid)
            VALUES ('00000000-0000-0000-0000-0000000000e1', '\(tenant.lowercased)', 'http://127.0.0.1:9/hook', 'whsec_x', 1);
            """)
        // Dispatch sees only what committed before it: in statements of their own.
        _ = try c.query("SELECT gpb_webhook_dispatch(100) AS n")
        try c.executeScript(
            """
            INSERT INTO ledger_checkpoint (through_seq) SELECT max(seq) FROM ledger;
            INSERT INTO ledger_checkpoint_pools SELECT region_id, pool_id, sum(delta) FROM ledger GROUP BY 1, 2;
            """)
    }

    struct Measures: Equatable {
        var ledger: [String], live: [String], usage: [String], spend: [String], charged: [String], deliveries: [String]
    }

    func measures(_ c: PostgresConnection, newerThanMigration9: Bool) throws -> Measures {
        func lines(_ sql: String) throws -> [String] {
            try c.query("SELECT line FROM (\(sql)) AS q (line) ORDER BY 1").map { try $0.decode("line", as: String.self) }
        }
        let hasUsage = try c.query("SELECT to_regclass('tenant_usage') IS NOT NULL AS present")[0].decode("present", as: Bool.self)
        return Measures(
            ledger: try lines("SELECT region_id || '/' || pool_id || ': ' || sum(delta) FROM ledger GROUP BY region_id, pool_id"),
            live: try lines("SELECT region_id || '/' || pool_id || ': ' || count(*) FROM instances WHERE state IN ('running', 'idle') GROUP BY region_id, pool_id"),
            usage: hasUsage
                ? try lines("SELECT tenant_id || ': ' || instances || ' ' || gpus || ' ' || cpu || ' ' || memory_gib FROM tenant_usage WHERE instances > 0")
                : [],
            spend: newerThanMigration9
                ? try lines("SELECT tenant_id || ' ' || month || ': ' || committed_spend || ' ' || adjusted_spend FROM tenant_spend") : [],
            charged: newerThanMigration9
                ? try lines("""
                    SELECT tenant_id || ' ' || pool_id || ': ' || sum(seconds) || ' ' || round(sum(cost)::numeric, 9)
                    FROM gpb_charged_intervals('2026-01-01Z', '2027-01-01Z', NULL) GROUP BY tenant_id, pool_id
                    """) : [],
            deliveries: newerThanMigration9
                ? try lines("""
                    SELECT event_type || ' ' || status || ' ' || (SELECT pending FROM webhook_lanes l
                                                                  WHERE l.endpoint_id = d.endpoint_id AND l.allocation_id = d.allocation_id)
                    FROM webhook_deliveries d
                    """) : [])
    }

    /// The versions a fixture's commit had applied: the schema_migrations rows it inserts.
    static func versions(in fixture: URL) throws -> Set<Int> {
        let prefix = "INSERT INTO schema_migrations (version, name) VALUES ("
        return Set(try String(contentsOf: fixture, encoding: .utf8).split(separator: "\n").compactMap { line -> Int? in
            line.hasPrefix(prefix) ? Int(line.dropFirst(prefix.count).prefix { $0.isNumber }) : nil
        })
    }
}
