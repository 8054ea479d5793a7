import BrokerCore
@testable import BrokerStore
import Foundation
import PostgresClient
import TestHarness
import TestSupport
import XCTest

/// Migration 4: each invariant the broker keeps in Swift is refused by the database
/// too when a direct SQL write breaks it, and the store maps the refusal to a domain error.
final class InvariantTests: XCTestCase {
    var connection: PostgresConnection!
    let tenant = UUID()

    override func setUpWithError() throws {
        connection = try PostgresConnection.connect(PostgresConfiguration(url: try TestDatabase.create()))
        try connection.query(
            "INSERT INTO tenants (id, name, token_hash) VALUES ($1, 'rules', sha256('rules-token'::bytea))", [tenant])
    }

    func region(_ id: String, primary: Bool) -> String {
        """
        INSERT INTO regions (id, kind, is_primary, vpc_id, vswitch_ids, security_group_id, state)
        VALUES ('\(id)', 'serverless', \(primary), 'vpc', '{vsw}', 'sg', 'active')
        """
    }

    /// A pool row; `gpu` is the SQL of (gpu_series, gpu_memory_gib, gpus_per_instance).
    /// A GPU pool's vendor is NVIDIA's unless `vendor` says otherwise.
    func pool(_ id: String, computeClass: String = "general-purpose", qos: String = "{default}",
              gpu: String = "NULL, NULL, NULL", vendor: String? = nil) -> String {
        let vendor = vendor ?? (computeClass == "gpu" ? "'nvidia'" : "NULL")
        return """
            INSERT INTO pools (region_id, id, compute_class, qos, gpu_series, gpu_memory_gib, gpus_per_instance,
                               cpu, memory_gib, instance_type, capacity, price_per_hour, gpu_vendor)
            VALUES ('a', '\(id)', '\(computeClass)', '\(qos)', \(gpu), 2, 4, 'ecs.\(id)', 10, 1, \(vendor))
            """
    }

    /// An allocation row with the given status and columns (SQL expressions).
    func allocation(
        status: String, replicas: Int = 2, placed: Int = 0, lease: String = "NULL", deadline: String = "NULL"
    ) -> String {
        """
        INSERT INTO allocations (id, tenant_id, status, request, replicas, placed_replicas, lease_seconds,
                                 lease_expires_at, queue_deadline)
        VALUES (gen_random_uuid(), '\(tenant.lowercased)', '\(status)', '{}', \(replicas), \(placed), 60,
                \(lease), \(deadline))
        """
    }

    /// `sql` is refused with `state` naming `constraint`, and the store maps it to `domain`.
    func assertRefused(
        _ sql: String, _ state: SQLState, _ constraint: String, domain: StoreError?,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try connection.query(sql), sql, file: file, line: line) { error in
            guard let error = error as? PostgresError else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertEqual(error.sqlState, state, error.debugDescription, file: file, line: line)
            XCTAssertEqual(error.constraint, constraint, error.debugDescription, file: file, line: line)
            XCTAssertEqual(StoreError(error), domain, file: file, line: line)
        }
    }

    func count(_ sql: String) throws -> Int { try connection.query(sql)[0].decode("n") }

    func testOnceAnyRegionExistsOneIsThePrimary() throws {
        let rule = StoreError.conflict("a region must be the primary region while any region exists")
        assertRefused(region("a", primary: false), .checkViolation, "regions_one_primary", domain: rule)
        try connection.query(region("a", primary: true))
        try connection.query(region("b", primary: false))
        assertRefused("UPDATE regions SET is_primary = false WHERE id = 'a'", .checkViolation, "regions_one_primary", domain: rule)
        assertRefused("DELETE FROM regions WHERE id = 'a'", .checkViolation, "regions_one_primary", domain: rule)
        // Checked at commit: moving the primary takes two statements in one transaction.
        try connection.executeScript(
            "BEGIN; UPDATE regions SET is_primary = false WHERE id = 'a'; UPDATE regions SET is_primary = true WHERE id = 'b'; COMMIT")
        XCTAssertEqual(try count("SELECT count(*)::int AS n FROM regions WHERE is_primary AND id = 'b'"), 1)
        try connection.query("DELETE FROM regions")
        // At most one: the index of migration 1.
        try connection.query(region("a", primary: true))
        assertRefused(
            region("b", primary: true), .uniqueViolation, "regions_single_primary",
            domain: .conflict("another region became the primary region at the same time; retry"))
    }

    func testPoolsServeKnownQoSLevelsEachOnce() throws {
        try connection.query(region("a", primary: true))
        let rule = StoreError.conflict("a pool serves known QoS levels, each once")
        for qos in ["{gold}", "{default,default}", "{}", "{default,NULL}", "{{default},{best-effort}}"] {
            assertRefused(pool("p", qos: qos), .checkViolation, "pools_qos_known", domain: rule)
        }
        try connection.query(pool("p", qos: "{best-effort,default}"))
        assertRefused("UPDATE pools SET qos = '{default,gold}'", .checkViolation, "pools_qos_known", domain: rule)
    }

    func testGPUFieldsAreSetExactlyForTheGPUClass() throws {
        try connection.query(region("a", primary: true))
        let rule = StoreError.conflict("GPU fields are set exactly for pools of compute class gpu")
        for (computeClass, gpu) in [
            ("general-purpose", "'T4', NULL, NULL"), ("performance", "NULL, 16, NULL"), ("general-purpose", "NULL, NULL, 1"),
            ("gpu", "NULL, 16, 1"), ("gpu", "'T4', NULL, 1"), ("gpu", "'T4', 16, NULL"), ("gpu", "'T4', 0, 1"),
            ("gpu", "'T4', 16, 0"),
        ] {
            assertRefused(pool("p", computeClass: computeClass, gpu: gpu), .checkViolation, "pools_gpu_fields_only_for_gpu", domain: rule)
        }
        try connection.query(pool("g", computeClass: "gpu", gpu: "'T4', 16, 1"))
        try connection.query(pool("c"))
        assertRefused("UPDATE pools SET gpu_series = 'T4' WHERE id = 'c'", .checkViolation, "pools_gpu_fields_only_for_gpu", domain: rule)
        // The accelerator's vendor (migration 14): every GPU pool has a known one, no other pool any.
        let vendorRule = StoreError.conflict("a GPU pool says whose accelerator it is, and a pool of another class has none")
        assertRefused(pool("v", computeClass: "gpu", gpu: "'T4', 16, 1", vendor: "NULL"), .checkViolation,
                      "pools_accelerator_only_for_gpu", domain: vendorRule)
        assertRefused("UPDATE pools SET gpu_interconnect = '{efa}' WHERE id = 'c'", .checkViolation,
                      "pools_accelerator_only_for_gpu", domain: vendorRule)
        assertRefused("UPDATE pools SET gpu_vendor = 'acme' WHERE id = 'g'", .checkViolation, "pools_gpu_vendor_known",
                      domain: .conflict("a pool's accelerator vendor is one the broker knows"))
    }

    func testAnAllocationNeverHoldsMoreReplicasThanItAsksFor() throws {
        let rule = StoreError.conflict("an allocation cannot hold more replicas than it asks for")
        assertRefused(
            allocation(status: "active", replicas: 2, placed: 3, lease: "now()"), .checkViolation,
            "allocations_placed_within_replicas", domain: rule)
        try connection.query(allocation(status: "active", replicas: 2, placed: 2, lease: "now()"))
        assertRefused("UPDATE allocations SET replicas = 1", .checkViolation, "allocations_placed_within_replicas", domain: rule)
    }

    func testLeaseAndQueueDeadlineFollowTheStatus() throws {
        let rule = StoreError.conflict("the allocation's lease and queue deadline do not fit its status")
        let refused: [(String, Int, String, String)] = [  // status, placed, lease, deadline
            ("pending", 0, "NULL", "NULL"), ("pending", 0, "now()", "now()"), ("pending", 1, "NULL", "now()"),
            ("unschedulable", 0, "NULL", "NULL"), ("unschedulable", 0, "now()", "now()"),
            ("active", 2, "NULL", "NULL"), ("active", 2, "now()", "now()"),
            ("partial", 1, "NULL", "NULL"), ("partial", 1, "now()", "now()"),
            ("expired", 0, "NULL", "NULL"), ("expired", 1, "now()", "NULL"), ("expired", 0, "now()", "now()"),
            ("released", 0, "now()", "NULL"), ("released", 1, "NULL", "NULL"),
        ]
        for (status, placed, lease, deadline) in refused {
            assertRefused(
                allocation(status: status, placed: placed, lease: lease, deadline: deadline), .checkViolation,
                "allocations_columns_by_status", domain: rule)
        }
        let accepted: [(String, Int, String, String)] = [
            ("pending", 0, "NULL", "now()"), ("unschedulable", 0, "NULL", "now()"), ("active", 2, "now()", "NULL"),
            ("partial", 1, "now()", "NULL"), ("partial", 0, "now()", "NULL"), ("expired", 0, "now()", "NULL"),
            ("released", 0, "NULL", "NULL"), ("released", 0, "NULL", "now()"),
        ]
        for (status, placed, lease, deadline) in accepted {
            try connection.query(allocation(status: status, placed: placed, lease: lease, deadline: deadline))
        }
        assertRefused(
            "UPDATE allocations SET status = 'released' WHERE status = 'active'", .checkViolation,
            "allocations_columns_by_status", domain: rule)
    }

    func testTheLedgerIsAppendOnly() throws {
        try connection.query("INSERT INTO ledger (kind, delta, actor) VALUES ('renewed', 0, 'test')")
        for sql in ["UPDATE ledger SET delta = 1", "DELETE FROM ledger", "TRUNCATE ledger"] {
            assertRefused(sql, .ledgerAppendOnly, "ledger_append_only", domain: nil)
        }
        XCTAssertEqual(try count("SELECT count(*)::int AS n FROM ledger WHERE delta = 0"), 1)
    }

    /// The store's one mapping, through store operations: the error that reaches the
    /// API is a domain error, not a bare SQLSTATE.
    func testStoreOperationsAnswerDomainErrors() async throws {
        let url = try TestDatabase.create()
        let pool = PostgresPool(configuration: try PostgresConfiguration(url: url), size: 1)
        let (primary, duplicate) = (region("a", primary: true), region("a", primary: false))
        try await pool.withConnection { c in try c.query(primary) }
        try await assertStoreError(.conflict("the region already exists")) {
            _ = try await pool.withConnection { c in try c.query(duplicate) }
        }
        // A tenant removed behind the store's back: its policy's foreign key answers "not found".
        let gone = UUID()
        let direct = try PostgresConnection.connect(PostgresConfiguration(url: url))
        try direct.query("INSERT INTO tenants (id, name, token_hash) VALUES ($1, 'gone', sha256('gone'::bytea))", [gone])
        try direct.query("DELETE FROM tenants WHERE id = $1", [gone])
        let policy = NamedPolicy(name: "p", policy: PlacementPolicy(strategy: .prefer, units: []))
        try await assertStoreError(.notFound("the tenant no longer exists")) {
            _ = try await PolicyStore(pool: pool).put(tenantId: gone, policy, limit: 100)
        }
        await pool.close()
    }

    func assertStoreError(
        _ expected: StoreError, file: StaticString = #filePath, line: UInt = #line, _ body: () async throws -> Void
    ) async throws {
        do {
            try await StoreError.translating(body)
            XCTFail("no error; expected \(expected)", file: file, line: line)
        } catch let error as StoreError {
            XCTAssertEqual(error, expected, file: file, line: line)
        }
    }
}
