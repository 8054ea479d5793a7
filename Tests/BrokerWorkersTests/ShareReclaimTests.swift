import BrokerStore
import Foundation
import JSON
import PostgresClient
import TestSupport
import XCTest

/// Issue 28: a tenant under its guarantee whose request waits because nothing is free
/// reclaims capacity that others borrow, through the preemption path, and never capacity
/// within anyone's guarantee; no two tenants take capacity back and forth. Real database,
/// real HTTP; the admitter's passes are run by hand.
final class ShareReclaimTests: XCTestCase {
    var broker: TestBroker!
    var maintenance: MaintenanceStore { MaintenanceStore(pool: broker.pool, starvationLimit: .seconds(3600)) }

    override func setUp() async throws {
        broker = try await TestBroker.withFourT4()
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    /// A tenant guaranteed 2 of the 4 T4 GPUs.
    func guaranteedTenant(_ name: String) async throws -> (token: String, id: String) {
        let tenant = try await broker.tenant(name)
        let share = try await broker.call(
            "PUT", "/v1/admin/tenants/\(tenant.id)/share", token: broker.adminToken,
            json: ["resources": ["gpu:T4": ["guaranteed": 2]]])
        XCTAssertEqual(share.status, 200, share.text)
        return tenant
    }

    func running(_ tenant: String) async throws -> Int {
        try await broker.pool.withConnection { c in
            try c.query(
                """
                SELECT count(*)::int AS n FROM instances i JOIN allocations a ON a.id = i.allocation_id
                WHERE a.tenant_id = $1 AND i.state = 'running'
                """, [UUID(uuidString: tenant)!])[0].decode("n")
        }
    }

    func preemptions() async throws -> Int {
        try await broker.pool.withConnection { c in
            try c.query("SELECT count(*)::int AS n FROM ledger WHERE kind = 'preempted'")[0].decode("n")
        }
    }

    /// A borrowed all 4 GPUs; B, guaranteed 2, asks for 1 then 1 more: each time A's newest
    /// instance is preempted and B admitted in the same pass. B's third request would pass
    /// its guarantee: it waits, and A keeps its guaranteed 2.
    func testATenantUnderItsGuaranteeReclaimsBorrowedCapacityNeverAGuarantee() async throws {
        let a = try await guaranteedTenant("a")
        let b = try await guaranteedTenant("b")
        var held: [String] = []
        for _ in 0..<4 { held.append(try await broker.queueT4(a.token, expect: 201)) }

        for round in 1...2 {
            let asked = try await broker.queueT4(b.token, expect: 202)
            let pass = try await maintenance.admitPending()
            XCTAssertEqual(pass.admitted, 1, "round \(round)")
            let askedStatus = try await broker.status(asked, b.token)
            XCTAssertEqual(askedStatus, "active", "round \(round)")
            let victim = try await broker.call("GET", "/v1/allocations/\(held[4 - round])", token: a.token)
            XCTAssertEqual(victim.json["placedReplicas"], 0, "round \(round): A's newest is taken\n\(victim.text)")
        }
        let aRunning = try await running(a.id)
        let bRunning = try await running(b.id)
        XCTAssertEqual([aRunning, bRunning], [2, 2])

        let third = try await broker.queueT4(b.token, expect: 202)
        let pass = try await maintenance.admitPending()
        XCTAssertEqual(pass.admitted, 0, "B at its guarantee reclaims nothing more")
        let thirdStatus = try await broker.status(third, b.token)
        XCTAssertEqual(thirdStatus, "pending")
        let aAfter = try await running(a.id)
        XCTAssertEqual(aAfter, 2, "A's guaranteed 2 are never preempted")
        let count = try await preemptions()
        XCTAssertEqual(count, 2)
        let problems = try await LedgerCheck.run(broker)
        XCTAssertEqual(problems, [])
    }

    /// A holds 3 (borrowing 1), B holds 1. Both keep asking for more, pass after pass:
    /// B reclaims once (up to its guarantee); after that neither takes anything back.
    func testTwoTenantsAskingInTurnPreemptAtMostOnce() async throws {
        let a = try await guaranteedTenant("a")
        let b = try await guaranteedTenant("b")
        for _ in 0..<3 { _ = try await broker.queueT4(a.token, expect: 201) }
        _ = try await broker.queueT4(b.token, expect: 201)
        for _ in 0..<4 {
            _ = try await broker.queueT4(b.token, expect: 202)
            _ = try await maintenance.admitPending()
            _ = try await broker.queueT4(a.token, expect: 202)
            _ = try await maintenance.admitPending()
        }
        let count = try await preemptions()
        XCTAssertEqual(count, 1)
        let aRunning = try await running(a.id)
        let bRunning = try await running(b.id)
        XCTAssertEqual([aRunning, bRunning], [2, 2])
    }
}
