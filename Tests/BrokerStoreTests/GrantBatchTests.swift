import BrokerCore
@testable import BrokerStore
import Foundation
import PostgresClient
import TestHarness
import TestSupport
import XCTest

/// Group commit of grants: `gpb_grant_batch` (migration 3) and `GrantBatcher`.
final class GrantBatchTests: XCTestCase {
    var url = ""
    var connection: PostgresConnection!
    let tenant = UUID()

    override func setUpWithError() throws {
        url = try TestDatabase.create()
        connection = try PostgresConnection.connect(PostgresConfiguration(url: url))
        try connection.query(
            """
            INSERT INTO regions (id, kind, is_primary, vpc_id, vswitch_ids, security_group_id, state)
            VALUES ('a', 'serverless', true, 'vpc-a', '{vsw-a}', 'sg-a', 'active')
            """)
        try connection.query(
            """
            INSERT INTO pools (region_id, id, compute_class, qos, cpu, memory_gib, instance_type, capacity, price_per_hour)
            VALUES ('a', 'p', 'general-purpose', '{default,best-effort}', 2, 4, 'ecs.g8i.large', 30, 1)
            """)
        try connection.query(
            "INSERT INTO tenants (id, name, token_hash) VALUES ($1, 'batch', sha256('batch-token'::bytea))", [tenant])
    }

    /// md5 of an empty policy list, as `gpb_tenant_policies` gives it.
    let noPolicies = "d751713988987e9331980363e24189ce"

    func reservation(tenant: UUID? = nil, count: Int = 1, vSwitches: Int? = nil, policies: String? = nil) -> GrantReservation {
        let id = ResourceID(UUID())
        let vSwitches = Array(repeating: #""vsw-a""#, count: vSwitches ?? count).joined(separator: ",")
        let record = """
            {"allocation_id":"\(id)","tenant_id":"\(ResourceID(tenant ?? self.tenant))","status":"active",
             "request":{"shape":{"computeClass":"general-purpose","qos":"default","gpuCount":0,"cpu":2,"memoryGiB":4},
                        "replicas":\(count)},
             "replicas":\(count),"placed_replicas":\(count),"labels":{},"decisions":[],"lease_seconds":60,
             "placements":[{"region":"a","pool":"p","count":\(count),"unit":null,"vswitches":[\(vSwitches)]}],
             "actor":"test","policies":"\(policies ?? noPolicies)"}
            """
        return GrantReservation(allocationId: id, record: Array(record.utf8))
    }

    /// A tenant with a quota (JSON), beside the test's tenant without one.
    func addTenant(_ name: String, quota: String) throws -> UUID {
        let id = UUID()
        try connection.query(
            "INSERT INTO tenants (id, name, token_hash, quota) VALUES ($1, $2, sha256(convert_to($2, 'UTF8')), $3::jsonb)",
            [id, name, quota])
        return id
    }

    func count(_ sql: String) throws -> Int {
        try connection.query(sql)[0].decode("n")
    }

    func batch(_ grants: [GrantReservation]) throws -> Set<String> {
        let rows = try connection.query(
            "SELECT DISTINCT allocation_id::text AS id FROM gpb_grant_batch(\(GrantReservation.many))",
            [GrantReservation.batch(grants)])
        return Set(try rows.map { try $0.decode("id") })
    }

    /// A grant that no longer fits is turned away alone: the others in its statement land.
    /// It still counts in the demand of those after it (they would be planned again).
    func testAGrantThatDoesNotFitIsSkippedAndTheOthersLand() throws {
        let grants = [reservation(count: 20), reservation(count: 5), reservation(count: 20), reservation(count: 5)]
        let granted = try batch(grants)
        XCTAssertEqual(granted, [grants[0].allocationId.description, grants[1].allocationId.description])
        XCTAssertEqual(try count("SELECT allocated AS n FROM pools"), 25)
        XCTAssertEqual(try count("SELECT count(*)::int AS n FROM allocations"), 2)
        XCTAssertEqual(try count("SELECT count(*)::int AS n FROM instances"), 25)
        XCTAssertEqual(try count("SELECT sum(delta)::int AS n FROM ledger"), 25)
        let retried = reservation(count: 5)
        XCTAssertEqual(try batch([retried]), [retried.allocationId.description])
        XCTAssertEqual(try count("SELECT allocated AS n FROM pools"), 30)
    }

    /// With a warm instance to reuse, each grant runs on its own (in a subtransaction),
    /// so one that does not fit takes nothing from those after it.
    func testWithIdleInstancesEachGrantIsCountedAlone() throws {
        let warm = reservation()
        XCTAssertEqual(try batch([warm]).count, 1)
        try connection.query(
            "UPDATE instances SET state = 'idle', idle_since = now() WHERE allocation_id = $1", [warm.allocationId])
        try connection.query("UPDATE pools SET idle = 1")
        let grants = [reservation(count: 25), reservation(count: 10), reservation(count: 4)]
        XCTAssertEqual(try batch(grants), [grants[0].allocationId.description, grants[2].allocationId.description])
        XCTAssertEqual(try count("SELECT allocated AS n FROM pools"), 29)
        XCTAssertEqual(try count("SELECT idle AS n FROM pools"), 0)
        XCTAssertEqual(try count("SELECT count(*)::int AS n FROM instances WHERE reused"), 1)
    }

    /// A grant planned with policies that have changed since is skipped; a tenant's
    /// quota is checked in the batch, counting its earlier grants in the batch as granted.
    func testAGrantOfATenantThatChangedOrWouldPassItsQuotaIsSkipped() throws {
        let limited = try addTenant("limited", quota: #"{"instances": 5}"#)
        let stale = reservation(policies: "0")
        let grants = [
            reservation(tenant: limited, count: 3), stale, reservation(tenant: limited, count: 3), reservation(),
            reservation(tenant: limited, count: 2),
        ]
        XCTAssertEqual(try batch(grants), [grants[0].allocationId.description, grants[3].allocationId.description])
        XCTAssertEqual(try count("SELECT allocated AS n FROM pools"), 4)
        XCTAssertEqual(try count("SELECT instances AS n FROM tenant_usage WHERE tenant_id = '\(limited)'"), 3)
        let fits = reservation(tenant: limited, count: 2)
        XCTAssertEqual(try batch([fits]), [fits.allocationId.description])
    }

    /// Calls of each function by one batch statement (rolled back): the work a batch does
    /// per tenant and per grant (migration 9).
    func calls(_ grants: [GrantReservation], _ functions: [String]) throws -> [String: Int] {
        // The counts of the backend's transactions not yet reported, this one's included.
        func counts() throws -> [Int] {
            try functions.map {
                try count("SELECT coalesce(pg_stat_get_xact_function_calls('\($0)'::regproc), 0)::int AS n")
            }
        }
        try connection.executeScript("BEGIN; SET LOCAL track_functions = 'all'")
        defer { try? connection.executeScript("ROLLBACK") }
        let before = try counts()
        _ = try batch(grants)
        return Dictionary(uniqueKeysWithValues: zip(functions, zip(try counts(), before).map { $0 - $1 }))
    }

    /// A batch checks each tenant's policies once, not once per grant, and does quota
    /// work only for the grants of tenants that have a quota (a budget is not one). (The
    /// usage counters' trigger asks gpb_quota_problem once per tenant whose usage rises.)
    func testABatchChecksEachTenantOnceAndQuotasOnlyWhereThereAreSome() throws {
        let functions = ["gpb_tenant_unchanged", "gpb_quota_problem"]
        XCTAssertEqual(
            try calls((0..<6).map { _ in reservation() }, functions),
            ["gpb_tenant_unchanged": 1, "gpb_quota_problem": 1])
        let budgeted = try addTenant("budgeted", quota: #"{"spendPerMonth": 1000}"#)
        XCTAssertEqual(
            try calls([reservation(), reservation(tenant: budgeted)], functions),
            ["gpb_tenant_unchanged": 2, "gpb_quota_problem": 2])
        let limited = try addTenant("limited", quota: #"{"gpus": null, "cpu": 64}"#)
        let mixed = [reservation(), reservation(tenant: limited), reservation(), reservation(tenant: limited)]
        XCTAssertEqual(try calls(mixed, functions), ["gpb_tenant_unchanged": 2, "gpb_quota_problem": 2 + 2])
    }

    /// Grants take capacity and notify nobody; capacity freed and inventory changed
    /// notify the brokers (migration 6's rule, kept by migration 9's two triggers).
    func testGrantsNotifyNobodyAndFreedCapacityOrChangedInventoryNotifies() async throws {
        let events = Collector<PostgresListener.Event>()
        let listener = PostgresListener(
            configuration: try PostgresConfiguration(url: url), channels: ["gpb_inventory"]
        ) { events.append($0) }
        defer { listener.stop() }
        _ = try await waitFor("the listener") { events.items.isEmpty ? nil : true }
        func notified(_ change: String) async throws -> Bool {
            let before = events.items.count
            try connection.query(change)
            let deadline = ContinuousClock.now + .milliseconds(500)
            while ContinuousClock.now < deadline, events.items.count == before {
                try await Task.sleep(for: .milliseconds(10))
            }
            return events.items.count > before
        }
        let grant = reservation(count: 3)
        XCTAssertEqual(try batch([grant]).count, 1)
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertEqual(events.items, [.connected], "a grant notifies nobody")
        let changes = [
            ("allocated = allocated + 1", false), ("capacity = capacity, price_per_hour = price_per_hour", false),
            ("allocated = allocated - 1", true), ("idle = 1", true), ("capacity = capacity + 1", true),
            ("price_per_hour = 2", true), ("qos = '{default}'", true),
        ]
        var outcomes: [String] = []
        for (change, _) in changes {
            outcomes.append("\(change): \(try await notified("UPDATE pools SET \(change)") ? "notified" : "silent")")
        }
        XCTAssertEqual(outcomes, changes.map { "\($0.0): \($0.1 ? "notified" : "silent")" })
    }

    /// Grants that wait while a batch runs go out together, and each gets its own answer:
    /// 40 grants against a capacity of 30 give exactly 30 grants and 10 lost races.
    func testConcurrentGrantsShareStatementsAndNeverExceedCapacity() async throws {
        let pool = PostgresPool(configuration: try PostgresConfiguration(url: url), size: 1)
        let batcher = GrantBatcher(pool: pool, maxBatch: 32, maxConcurrentBatches: 1)
        let grants = (0..<40).map { _ in reservation() }
        // Hold the only connection so that every grant is queued before the first batch runs.
        let held = Task { try await pool.withConnection { c in try c.query("SELECT pg_sleep(0.3)") } }
        try await Task.sleep(for: .milliseconds(50))
        let outcomes = await withTaskGroup(of: String.self) { group in
            for grant in grants {
                group.addTask {
                    do {
                        let instances = try await batcher.grant(grant)
                        return instances.count == 1 ? "granted" : "wrong count"
                    } catch is AllocationStore.LostRace {
                        return "lost"
                    } catch {
                        return "\(error)"
                    }
                }
            }
            return await group.reduce(into: [String: Int]()) { $0[$1, default: 0] += 1 }
        }
        _ = try await held.value
        XCTAssertEqual(outcomes, ["granted": 30, "lost": 10])
        XCTAssertEqual(batcher.statistics.grants, 40)
        XCTAssertEqual(batcher.statistics.batches, 2, "32, then the last 8")
        XCTAssertEqual(try count("SELECT allocated AS n FROM pools"), 30)
        XCTAssertEqual(try count("SELECT count(*)::int AS n FROM allocations"), 30)
        await pool.close()
    }

    /// A sender whose connection breaks answers its batch with the error and ends; the
    /// grants queued behind it get a sender on a fresh connection. The first batch is
    /// held on the pool's row lock so that the others queue while the sender still has
    /// its connection, and its backend is ended then: the hand-over must happen.
    func testGrantsAfterALostConnectionGoOutOnANewOne() async throws {
        let pool = PostgresPool(configuration: try PostgresConfiguration(url: url), size: 2)
        let batcher = GrantBatcher(pool: pool, maxBatch: 32, maxConcurrentBatches: 1)
        let locker = try PostgresConnection.connect(PostgresConfiguration(url: url))
        try locker.executeScript("BEGIN; SELECT * FROM pools FOR UPDATE")
        let outcomes = Collector<String>()
        func start(_ grant: GrantReservation) {
            Task {
                do {
                    outcomes.append("granted \(try await batcher.grant(grant).count)")
                } catch let error as PostgresError where error.isConnectionProblem {
                    outcomes.append("connection lost")
                } catch {
                    outcomes.append("\(error)")
                }
            }
        }
        start(reservation())
        let sender = try await waitFor("the first batch to wait on the pool's lock") {
            try self.connection.query(
                """
                SELECT pid FROM pg_stat_activity
                WHERE wait_event_type = 'Lock' AND query LIKE '%gpb_grant_batch%'
                """
            ).first.map { try $0.decode("pid", as: Int.self) }
        }
        start(reservation())
        start(reservation())
        try await Task.sleep(for: .milliseconds(100))  // both queued behind the busy sender
        XCTAssertEqual(outcomes.items, [])
        try connection.query("SELECT pg_terminate_backend($1)", [sender])
        try locker.executeScript("ROLLBACK")
        _ = try await waitFor("three answers") { outcomes.items.count == 3 ? true : nil }
        XCTAssertEqual(outcomes.items.sorted(), ["connection lost", "granted 1", "granted 1"])
        XCTAssertEqual(batcher.statistics.batches, 2, "the lost batch, then the two queued grants together")
        XCTAssertEqual(try count("SELECT count(*)::int AS n FROM allocations"), 2)
        await pool.close()
    }

    /// One grant that breaks the statement (an instance without a vSwitch) fails alone.
    func testAGrantThatBreaksTheStatementFailsAlone() async throws {
        let pool = PostgresPool(configuration: try PostgresConfiguration(url: url), size: 1)
        let batcher = GrantBatcher(pool: pool, maxBatch: 32, maxConcurrentBatches: 1)
        let held = Task { try await pool.withConnection { c in try c.query("SELECT pg_sleep(0.3)") } }
        try await Task.sleep(for: .milliseconds(50))
        // All three wait for the connection and go out together; the statement fails, and
        // each grant then runs alone.
        let (first, second, third) = (reservation(), reservation(), reservation(count: 2, vSwitches: 1))
        let alone = Task { try await batcher.grant(first) }
        try await Task.sleep(for: .milliseconds(50))
        let good = Task { try await batcher.grant(second) }
        let orphan = Task { try await batcher.grant(third) }
        _ = try await held.value
        let firstGranted = try await alone.value
        let granted = try await good.value
        XCTAssertEqual(firstGranted.count, 1)
        XCTAssertEqual(granted.count, 1)
        do {
            _ = try await orphan.value
            XCTFail("an instance without a vSwitch was accepted")
        } catch {
            // Refused where the batch reads its input: a vSwitch for every instance.
            XCTAssertEqual((error as? PostgresError)?.sqlState, .invalidParameterValue)
        }
        XCTAssertEqual(batcher.statistics.batches, 1)
        XCTAssertEqual(try count("SELECT allocated AS n FROM pools"), 2)
        await pool.close()
    }

    /// A price cap is checked again where the batch locks its pools
    /// (`gpb_grants_affordable`, migration 10): a plan made from a snapshot that still
    /// shows the old price never lands on a pool whose price has since risen past the
    /// cap. (Grants in a transaction of their own read inventory in it and check the
    /// locked pools after reserving: a window too short to hit from a test.)
    func testAPriceRaisedAfterTheSnapshotIsNotGranted() async throws {
        let pool = PostgresPool(configuration: try PostgresConfiguration(url: url), size: 2)
        // Snapshots live a minute here, so the second plan reads the old price for sure.
        let store = AllocationStore(pool: pool, snapshotSeconds: 60)
        let request = AllocationRequest(
            shape: ComputeShape(computeClass: .generalPurpose, cpu: 2, memoryGiB: 4, maxPricePerHour: 2), replicas: 1,
            leaseSeconds: 60)
        _ = try await store.create(tenantId: tenant, request: request, actor: "test")
        try connection.query("UPDATE pools SET price_per_hour = 3")
        do {
            let granted = try await store.create(tenantId: tenant, request: request, actor: "test")
            XCTFail("granted at 3/h under a cap of 2: \(granted.instances.map(\.poolId))")
        } catch StoreError.insufficientCapacity(_, let decisions) {
            XCTAssertTrue(decisions.contains { $0.reason.contains("maxPricePerHour") }, "\(decisions)")
        }
        XCTAssertEqual(try count("SELECT allocated AS n FROM pools"), 1, "only the grant made at 1/h")
        await pool.close()
    }
}
