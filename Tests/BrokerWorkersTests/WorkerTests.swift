import BrokerCore
import BrokerStore
import BrokerWorkers
import Foundation
import Logging
import PostgresClient
import TestSupport
import XCTest

final class WorkerTests: XCTestCase {
    var broker: TestBroker!
    var token: String!
    var maintenance: MaintenanceStore { MaintenanceStore(pool: broker.pool) }

    override func setUp() async throws {
        broker = try TestBroker()
        token = try await broker.tenant().token
        try await broker.region("a")
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func allocate(_ replicas: Int, queue: Bool = false, lease: Int = 60) async throws -> TestBroker.Response {
        try await broker.call(
            "POST", "/v1/allocations", token: token,
            json: ["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": .number(Double(replicas)),
                   "queue": .bool(queue), "leaseSeconds": .number(Double(lease))])
    }

    /// Moves a lease into the past: the reconciler uses the database clock.
    func expireLease(_ id: String) async throws {
        try await broker.pool.withConnection { c in
            try c.query("UPDATE allocations SET lease_expires_at = now() - interval '1 second' WHERE id = $1::uuid", [id])
        }
    }

    func testExpiredLeaseReleasesItsCapacityAndCannotBeRenewed() async throws {
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 2, defer: 0)
        let id = try await allocate(2).json["id"]!.string!
        try await expireLease(id)
        let expired = try await maintenance.expireLeases()
        XCTAssertEqual(expired, 1)
        let view = try await broker.call("GET", "/v1/allocations/\(id)", token: token)
        XCTAssertEqual(view.json["status"], "expired")
        XCTAssertEqual(Set(view.json["instances"]!.array.map { $0["state"]!.string! }), ["released"])
        let renew = try await broker.call("POST", "/v1/allocations/\(id)/renew", token: token)
        XCTAssertEqual(renew.status, 409)
        let kinds = try await broker.call("GET", "/v1/allocations/\(id)/events", token: token).json["events"]!.array.map { $0["kind"]!.string! }
        XCTAssertEqual(kinds, ["reserved", "reserved", "expired", "expired"])
        let again = try await allocate(2)
        XCTAssertEqual(again.status, 201, "capacity came back")
        let problems = try await LedgerCheck.run(broker)
        XCTAssertEqual(problems, [])
    }

    func testIdleInstancesAreDeprovisionedAfterTheDelay() async throws {
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 3, defer: 1)
        let id = try await allocate(3).json["id"]!.string!
        _ = try await broker.call("DELETE", "/v1/allocations/\(id)", token: token)
        var pool = try await broker.call("GET", "/v1/regions/a/inventory", token: token).json["pools"]![0]!
        XCTAssertEqual(pool["idle"], 3)
        XCTAssertEqual(pool["allocated"], 3)
        XCTAssertEqual(pool["available"], 0)
        let early = try await maintenance.deprovisionIdle()
        XCTAssertEqual(early, 0, "not before the delay")
        try await Task.sleep(for: .milliseconds(1100))
        let due = try await maintenance.deprovisionIdle()
        XCTAssertEqual(due, 3)
        pool = try await broker.call("GET", "/v1/regions/a/inventory", token: token).json["pools"]![0]!
        XCTAssertEqual(pool["idle"], 0)
        XCTAssertEqual(pool["allocated"], 0)
        XCTAssertEqual(pool["available"], 3)
        let kinds = try await broker.call("GET", "/v1/allocations/\(id)/events", token: token).json["events"]!.array.map { $0["kind"]!.string! }
        XCTAssertEqual(kinds.filter { $0 == "deprovisioned" }.count, 3)
        let problems = try await LedgerCheck.run(broker)
        XCTAssertEqual(problems, [])
    }

    func testPendingAllocationsAreAdmittedOldestFirstWithoutBlocking() async throws {
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 2, defer: 0)
        let holder = try await allocate(2).json["id"]!.string!
        let big = try await allocate(5, queue: true)
        XCTAssertEqual(big.status, 202, big.text)
        XCTAssertEqual(big.json["status"], "pending")
        XCTAssertFalse(big.json["decisions"]!.array.isEmpty, "a pending allocation says why it waits")
        let small = try await allocate(1, queue: true)
        XCTAssertEqual(small.status, 202)
        var result = try await maintenance.admitPending()
        XCTAssertEqual(result.admitted, 0)
        _ = try await broker.call("DELETE", "/v1/allocations/\(holder)", token: token)
        result = try await maintenance.admitPending()
        XCTAssertEqual(result.admitted, 1)
        let bigNow = try await broker.call("GET", "/v1/allocations/\(big.json["id"]!.string!)", token: token)
        XCTAssertEqual(bigNow.json["status"], "pending", "5 replicas still do not fit in 2")
        let smallNow = try await broker.call("GET", "/v1/allocations/\(small.json["id"]!.string!)", token: token)
        XCTAssertEqual(smallNow.json["status"], "active")
        XCTAssertNotNil(smallNow.json["leaseExpiresAt"]?.string)
        let problems = try await LedgerCheck.run(broker)
        XCTAssertEqual(problems, [])
    }

    func testPendingPastItsDeadlineBecomesUnschedulable() async throws {
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 0)
        let pending = try await broker.call(
            "POST", "/v1/allocations", token: token,
            json: ["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 1, "queue": true,
                   "queueTimeoutSeconds": 1])
        XCTAssertEqual(pending.status, 202)
        try await Task.sleep(for: .milliseconds(1100))
        let result = try await maintenance.admitPending()
        XCTAssertEqual(result.timedOut, 1)
        let view = try await broker.call("GET", "/v1/allocations/\(pending.json["id"]!.string!)", token: token)
        XCTAssertEqual(view.json["status"], "unschedulable")
    }

    func testThreeBrokersExpireAThousandLeasesEachExactlyOnce() async throws {
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 1000, defer: 0)
        let store = AllocationStore(pool: broker.pool)
        let tenant = try await TenantStore(pool: broker.pool).create(name: "bulk", quota: TenantQuota()).tenant
        let request = AllocationRequest(
            shape: ComputeShape(computeClass: .generalPurpose, cpu: 2, memoryGiB: 4), replicas: 1, leaseSeconds: 60)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for _ in stride(from: worker, to: 1000, by: 8) {
                        _ = try await store.create(tenantId: tenant.id.uuid, request: request, actor: "test")
                    }
                }
            }
            try await group.waitForAll()
        }
        try await broker.pool.withConnection { c in
            try c.query("UPDATE allocations SET lease_expires_at = now() - interval '1 second'")
        }
        let pools = (0..<3).map { _ in PostgresPool(configuration: PostgresConfiguration(url: broker.databaseURL), size: 2) }
        let expired = try await withThrowingTaskGroup(of: Int.self) { group in
            for pool in pools {
                group.addTask {
                    var total = 0
                    while true {
                        let count = try await MaintenanceStore(pool: pool).expireLeases(batch: 50)
                        if count == 0 { return total }
                        total += count
                    }
                }
            }
            return try await group.reduce(0, +)
        }
        for pool in pools { await pool.close() }
        XCTAssertEqual(expired, 1000)
        let counts = try await broker.pool.withConnection { c in
            try c.query(
                """
                SELECT (SELECT count(*)::int FROM ledger WHERE kind = 'expired') AS expired_rows,
                       (SELECT count(DISTINCT instance_id)::int FROM ledger WHERE kind = 'expired') AS instances,
                       (SELECT count(*)::int FROM allocations WHERE status = 'expired') AS allocations
                """)[0]
        }
        XCTAssertEqual(try counts.decode("expired_rows", as: Int.self), 1000)
        XCTAssertEqual(try counts.decode("instances", as: Int.self), 1000)
        XCTAssertEqual(try counts.decode("allocations", as: Int.self), 1000)
        let problems = try await LedgerCheck.run(broker)
        XCTAssertEqual(problems, [])
    }

    func testRunningWorkersExpireLeasesButNotRenewedOnes() async throws {
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 4, defer: 0)
        var logger = Logger(label: "workers")
        logger.logLevel = .error
        let runner = BrokerWorkers(store: maintenance, configuration: .init(interval: .milliseconds(300)), logger: logger)
        let workers = Task { await runner.run() }
        defer { workers.cancel() }
        let renewed = try await allocate(1, lease: 10).json["id"]!.string!
        let abandoned = try await allocate(1, lease: 10).json["id"]!.string!
        // Renewed every third of its 10 s lease for 12 s: it must outlive the other one.
        for _ in 0..<4 {
            try await Task.sleep(for: .milliseconds(3_300))
            let renew = try await broker.call("POST", "/v1/allocations/\(renewed)/renew", token: token)
            XCTAssertEqual(renew.status, 200, renew.text)
        }
        try await Task.sleep(for: .milliseconds(800))
        let gone = try await broker.call("GET", "/v1/allocations/\(abandoned)", token: token)
        XCTAssertEqual(gone.json["status"], "expired")
        let kept = try await broker.call("GET", "/v1/allocations/\(renewed)", token: token)
        XCTAssertEqual(kept.json["status"], "active")
        workers.cancel()
        await workers.value
    }
}
