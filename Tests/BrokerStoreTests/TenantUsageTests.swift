@testable import BrokerStore
import BrokerCore
import Foundation
import PostgresClient
import TestHarness
import TestSupport
import XCTest

/// Per-tenant usage counters (migration 5): kept by the statements that change
/// instances, the quota a constraint on them, checked inside batched grants.
final class TenantUsageTests: XCTestCase {
    var url = ""
    var connection: PostgresConnection!
    var pool: PostgresPool!
    let tenant = UUID()

    override func setUpWithError() throws {
        url = try TestDatabase.create()
        connection = try PostgresConnection.connect(PostgresConfiguration(url: url))
        pool = PostgresPool(configuration: try PostgresConfiguration(url: url), size: 8)
        try connection.query(
            """
            INSERT INTO regions (id, kind, is_primary, vpc_id, vswitch_ids, security_group_id, state)
            VALUES ('a', 'serverless', true, 'vpc-a', '{vsw-a}', 'sg-a', 'active')
            """)
        try connection.query(
            """
            INSERT INTO pools (region_id, id, compute_class, qos, cpu, memory_gib, instance_type, capacity,
                               price_per_hour, defer_scale_in_seconds)
            VALUES ('a', 'p', 'general-purpose', '{default,best-effort}', 32, 64, 'ecs.g8i.large', 100, 1, 600)
            """)
        try connection.query(
            """
            INSERT INTO tenants (id, name, token_hash, quota)
            VALUES ($1, 'capped', sha256('capped-token'::bytea), '{"instances": 5, "cpu": 100}')
            """,
            [tenant])
    }

    override func tearDown() async throws {
        await pool.close()
    }

    func request(replicas: Int = 1, cpu: Double = 1.5) -> AllocationRequest {
        AllocationRequest(
            shape: ComputeShape(computeClass: .generalPurpose, cpu: cpu, memoryGiB: 2), replicas: replicas,
            leaseSeconds: 60)
    }

    /// `instances gpus cpu memory` of the tenant's counters.
    func usage() throws -> String {
        let row = try connection.query(
            """
            SELECT format('%s %s %s %s', instances, gpus, trim_scale(cpu), trim_scale(memory_gib)) AS u
            FROM tenant_usage WHERE tenant_id = $1
            """,
            [tenant])[0]
        return try row.decode("u")
    }

    func verify() async throws -> [String] {
        try await LedgerVerifier(pool: pool).verify().problems
    }

    /// Released allocations of the tenant, each with its released instance and
    /// ledger rows: what the quota check used to read through on every grant.
    func addHistory(_ count: Int) throws {
        try connection.query(
            """
            INSERT INTO allocations (id, tenant_id, status, request, replicas, placed_replicas, lease_seconds)
            SELECT md5('h' || g)::uuid, $1, 'released',
                   '{"shape":{"computeClass":"general-purpose","qos":"default","gpuCount":0,"cpu":1.5,"memoryGiB":2}}',
                   1, 0, 60
            FROM generate_series(1, $2) g
            """,
            [tenant, count])
        try connection.query(
            """
            INSERT INTO instances (id, allocation_id, region_id, pool_id, instance_type, gpu_count, cpu, memory_gib,
                                   vpc_id, vswitch_id, security_group_id, state, ended_at)
            SELECT md5('i' || g)::uuid, md5('h' || g)::uuid, 'a', 'p', 'ecs.g8i.large', 0, 2, 4, 'vpc-a', 'vsw-a',
                   'sg-a', 'released', now()
            FROM generate_series(1, $1) g
            """,
            [count])
        try connection.query(
            """
            INSERT INTO ledger (kind, region_id, pool_id, allocation_id, instance_id, delta, actor)
            SELECT kind, region_id, pool_id, allocation_id, id, delta, 'history'
            FROM instances, (VALUES ('reserved', 1), ('released', -1)) AS k (kind, delta)
            """)
        try connection.query("ANALYZE")
    }

    /// 16 concurrent grants against an instance quota of 5, with history present: all go
    /// out through the batcher, exactly 5 land, 11 are refused with the quota's numbers.
    func testQuotaIsCheckedInsideBatchedGrantsWithHistoryPresent() async throws {
        try addHistory(20_000)
        let store = AllocationStore(pool: pool)
        let (tenant, request) = (self.tenant, self.request())
        let outcomes = await withTaskGroup(of: String.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    do {
                        _ = try await store.create(tenantId: tenant, request: request, actor: "test")
                        return "granted"
                    } catch StoreError.quotaExceeded(let detail) {
                        return detail
                    } catch {
                        return "\(error)"
                    }
                }
            }
            return await group.reduce(into: [String: Int]()) { $0[$1, default: 0] += 1 }
        }
        XCTAssertEqual(
            outcomes, ["granted": 5, "quota instances: 5 in use + 1 requested exceeds the limit of 5": 11])
        XCTAssertEqual(store.batcher.statistics.grants, 16, "every grant went out in a batch")
        XCTAssertEqual(try usage(), "5 0 7.5 10")
        let problems = try await verify()
        XCTAssertEqual(problems, [])
    }

    /// A grant over the CPU quota is refused whole, while a smaller one still fits.
    func testEveryLimitIsChecked() async throws {
        let store = AllocationStore(pool: pool)
        _ = try await store.create(tenantId: tenant, request: request(replicas: 3, cpu: 30), actor: "test")
        do {
            _ = try await store.create(tenantId: tenant, request: request(replicas: 1, cpu: 10.5), actor: "test")
            XCTFail("granted past the CPU quota")
        } catch StoreError.quotaExceeded(let detail) {
            XCTAssertEqual(detail, "quota cpu: 90 in use + 10.5 requested exceeds the limit of 100")
        }
        _ = try await store.create(tenantId: tenant, request: request(replicas: 1, cpu: 10), actor: "test")
        XCTAssertEqual(try usage(), "4 0 100 8")
    }

    /// Grants with an idempotency key, scaling, release, reuse of warm instances and
    /// expiry all keep the counters equal to what the running instances use; the quota
    /// holds on scale-out too.
    func testCountersFollowEveryChangeOfState() async throws {
        let store = AllocationStore(pool: pool)
        let first = try await store.create(
            tenantId: tenant, request: request(replicas: 2), actor: "test", idempotencyKey: "k1")
        XCTAssertEqual(try usage(), "2 0 3 4")
        _ = try await store.scale(tenantId: tenant, id: first.id.uuid, replicas: 4, actor: "test")
        XCTAssertEqual(try usage(), "4 0 6 8")
        do {
            _ = try await store.scale(tenantId: tenant, id: first.id.uuid, replicas: 6, actor: "test")
            XCTFail("scaled past the instance quota")
        } catch StoreError.quotaExceeded(let detail) {
            XCTAssertEqual(detail, "quota instances: 4 in use + 2 requested exceeds the limit of 5")
        }
        _ = try await store.scale(tenantId: tenant, id: first.id.uuid, replicas: 1, actor: "test")
        XCTAssertEqual(try usage(), "1 0 1.5 2")
        _ = try await store.release(tenantId: tenant, id: first.id.uuid, actor: "test")
        XCTAssertEqual(try usage(), "0 0 0 0")
        // The warm instances are reused by the next grant.
        let second = try await store.create(tenantId: tenant, request: request(replicas: 3), actor: "test")
        XCTAssertEqual(second.instances.count, 3)
        XCTAssertEqual(try usage(), "3 0 4.5 6")
        try connection.query(
            "UPDATE allocations SET lease_expires_at = now() - interval '1 second' WHERE status IN ('active', 'partial')")
        _ = try await MaintenanceStore(pool: pool).expireLeases()
        XCTAssertEqual(try usage(), "0 0 0 0")
        let problems = try await verify()
        XCTAssertEqual(problems, [])
    }

    /// The quota is a constraint of the counters: even a statement written by hand cannot
    /// raise usage past it, while usage above a quota lowered since may still fall.
    func testTheQuotaIsAConstraintOnTheCounters() async throws {
        let store = AllocationStore(pool: pool)
        let held = try await store.create(tenantId: tenant, request: request(replicas: 5), actor: "test")
        XCTAssertThrowsError(
            try connection.query(
                """
                INSERT INTO instances (id, allocation_id, region_id, pool_id, instance_type, gpu_count, cpu,
                                       memory_gib, vpc_id, vswitch_id, security_group_id, state)
                VALUES (gen_random_uuid(), $1, 'a', 'p', 'x', 0, 2, 4, 'vpc-a', 'vsw-a', 'sg-a', 'running')
                """,
                [held.id])
        ) { error in
            XCTAssertEqual((error as? PostgresError)?.sqlState, .quotaExceeded)
        }
        try connection.query(#"UPDATE tenants SET quota = '{"instances": 2}' WHERE id = $1"#, [tenant])
        _ = try await store.scale(tenantId: tenant, id: held.id.uuid, replicas: 3, actor: "test")
        XCTAssertEqual(try usage(), "3 0 4.5 6")
    }

    /// `gpubroker verify` reports counters that disagree with the running instances.
    func testVerifyReportsCountersThatDisagree() async throws {
        let store = AllocationStore(pool: pool)
        _ = try await store.create(tenantId: tenant, request: request(replicas: 2), actor: "test")
        let before = try await verify()
        XCTAssertEqual(before, [])
        try connection.query("UPDATE tenant_usage SET cpu = cpu + 0.5 WHERE tenant_id = $1", [tenant])
        let after = try await verify()
        XCTAssertEqual(
            after,
            ["tenant \(tenant.lowercased): usage counters 2 instances, 0 GPUs, 3.5 CPU, 4 GiB, running instances use 2 instances, 0 GPUs, 3 CPU, 4 GiB"])
    }
}
