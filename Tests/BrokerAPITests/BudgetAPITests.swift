import BrokerCore
import BrokerStore
import Foundation
import JSON
import PostgresClient
import TestSupport
import XCTest

/// Monthly budgets (`spendPerMonth`, `gpuHoursPerMonth`) through the API, on a real
/// PostgreSQL: what spent plus committed may reach, under concurrency, on every path
/// that commits (grant, scale-out, renewal, admission), per calendar month.
final class BudgetAPITests: XCTestCase {
    var broker: TestBroker!

    override func setUp() async throws {
        broker = try TestBroker()
        try await broker.region("a", primary: true)
        // 2 per hour and one GPU an instance: a 900 s lease commits 0.5 and 0.25 GPU-hours.
        try await broker.pool("a", "t4", series: "T4", gpuMemory: 16, capacity: 200, price: 2)
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    static func t4(replicas: Int = 1, lease: Int = 900, _ extra: [String: JSONValue] = [:]) -> JSONValue {
        var body: [String: JSONValue] = [
            "computeClass": "gpu", "gpuSeries": ["T4"], "cpu": 4, "memoryGiB": 16, "replicas": .number(Double(replicas)),
            "leaseSeconds": .number(Double(lease)),
        ]
        for (key, value) in extra { body[key] = value }
        return .object(body)
    }

    /// Spent plus committed this month, in money and GPU-hours, from the counters.
    func counters(_ tenant: String) async throws -> (spend: Double, gpuHours: Double) {
        try await broker.pool.withConnection { c in
            let row = try c.query(
                """
                SELECT coalesce(sum(committed_spend + adjusted_spend) / 3600, 0)::float8 AS spend,
                       coalesce(sum(committed_gpu_seconds + adjusted_gpu_seconds) / 3600, 0)::float8 AS gpu_hours
                FROM tenant_spend WHERE tenant_id = $1 AND month = date_trunc('month', now() AT TIME ZONE 'UTC')::date
                """,
                [UUID(uuidString: tenant)!])[0]
            return (try row.decode("spend"), try row.decode("gpu_hours"))
        }
    }

    /// (c) 32 clients at once, half against a spend budget of 10 (a grant commits 0.5:
    /// 20 fit) and half against 5 GPU-hours (0.25 each: 20 fit), 32 requests per tenant,
    /// every fourth with an Idempotency-Key (a transaction of its own, checked by the
    /// counters' constraint rather than in the batch): exactly what fits is granted.
    func testNoOverspendUnder32ConcurrentClients() async throws {
        let spendTenant = try await broker.tenant("spend", quota: ["spendPerMonth": 10])
        let gpuTenant = try await broker.tenant("gpu-hours", quota: ["gpuHoursPerMonth": 5])
        let broker = self.broker!
        let outcomes = try await withThrowingTaskGroup(of: [(tenant: Int, status: Int, body: JSONValue)].self) { group in
            for client in 0..<32 {
                group.addTask {
                    var seen: [(Int, Int, JSONValue)] = []
                    for round in 0..<2 {
                        let token = client % 2 == 0 ? spendTenant.token : gpuTenant.token
                        let headers = (client + round) % 4 == 0 ? ["Idempotency-Key": "k-\(client)-\(round)"] : [:]
                        let response = try await broker.call(
                            "POST", "/v1/allocations", token: token, json: Self.t4(), headers: headers)
                        seen.append((client % 2, response.status, response.json))
                    }
                    return seen
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        for (tenant, name, perGrant, limit) in [(0, "spendPerMonth", 0.5, 10.0), (1, "gpuHoursPerMonth", 0.25, 5.0)] {
            let mine = outcomes.filter { $0.tenant == tenant }
            let granted = mine.filter { $0.status == 201 }
            let refused = mine.filter { $0.status == 403 }
            XCTAssertEqual(granted.count + refused.count, 32, mine.map(\.status).description)
            XCTAssertEqual(granted.count, 20, "\(name): \(Int(limit / perGrant)) grants fit")
            XCTAssertLessThanOrEqual(Double(granted.count) * perGrant, limit)
            for refusal in refused {
                XCTAssertEqual(refusal.body["code"], "budget_exceeded", "\(refusal.body)")
                XCTAssertEqual(refusal.body["budget"]?.string, name)
                XCTAssertEqual(refusal.body["limit"]?.numberValue, limit)
                XCTAssertEqual(refusal.body["remaining"]?.numberValue ?? -1, 0, accuracy: 1e-6)
                XCTAssertEqual(refusal.body["requested"]?.numberValue ?? 0, perGrant, accuracy: 1e-6)
            }
            print("budget \(name) \(limit): \(granted.count) granted (\(Double(granted.count) * perGrant) committed), \(refused.count) refused")
        }
        let spend = try await counters(spendTenant.id)
        XCTAssertEqual(spend.spend, 10, accuracy: 1e-9, "granted cost: 20 × 2/h × 900 s")
        let gpu = try await counters(gpuTenant.id)
        XCTAssertEqual(gpu.gpuHours, 5, accuracy: 1e-9)
        let problems = try await LedgerCheck.run(broker)
        XCTAssertEqual(problems, [])
    }

    func testScaleOutAndRenewalAreRefusedOverBudgetAndChangeNothing() async throws {
        let tenant = try await broker.tenant("renewing", quota: ["spendPerMonth": 1])
        let created = try await broker.call("POST", "/v1/allocations", token: tenant.token, json: Self.t4())
        XCTAssertEqual(created.status, 201, created.text)
        let id = created.json["id"]!.string!
        // Two more replicas for what is left of 900 s: about 1 more, past the 0.5 left.
        let scaled = try await broker.call("PATCH", "/v1/allocations/\(id)", token: tenant.token, json: ["replicas": 3])
        XCTAssertEqual(scaled.status, 403, scaled.text)
        XCTAssertEqual(scaled.json["code"], "budget_exceeded")
        XCTAssertEqual(scaled.json["remaining"]?.numberValue ?? 0, 0.5, accuracy: 0.01)
        XCTAssertTrue(scaled.json["detail"]!.string!.contains("remains"), scaled.text)
        let renewed = try await broker.call(
            "POST", "/v1/allocations/\(id)/renew", token: tenant.token, json: ["leaseSeconds": 3600])
        XCTAssertEqual(renewed.status, 403, renewed.text)
        XCTAssertEqual(renewed.json["code"], "budget_exceeded")
        let after = try await broker.call("GET", "/v1/allocations/\(id)", token: tenant.token)
        XCTAssertEqual(after.json["placedReplicas"], 1)
        XCTAssertEqual(after.json["leaseExpiresAt"], created.json["leaseExpiresAt"])
        // Within the budget both go through: one more replica, and a renewal for as long.
        let one = try await broker.call("PATCH", "/v1/allocations/\(id)", token: tenant.token, json: ["replicas": 2])
        XCTAssertEqual(one.status, 200, one.text)
        let released = try await broker.call("PATCH", "/v1/allocations/\(id)", token: tenant.token, json: ["replicas": 1])
        XCTAssertEqual(released.status, 200, released.text)
        let renewal = try await broker.call(
            "POST", "/v1/allocations/\(id)/renew", token: tenant.token, json: ["leaseSeconds": 900])
        XCTAssertEqual(renewal.status, 200, renewal.text)
        let spend = try await counters(tenant.id).spend
        XCTAssertLessThanOrEqual(spend, 1)
        XCTAssertGreaterThan(spend, 0.5, "the renewal committed 900 s from now")
    }

    /// Counters are per calendar month (UTC): last month's spend does not count, this
    /// month's does, and a lease is cut at the month's end.
    func testTheBudgetCountsTheCalendarMonth() async throws {
        let tenant = try await broker.tenant("monthly", quota: ["spendPerMonth": 1])
        let pieces: [String] = try await broker.pool.withConnection { c in
            try c.query(
                """
                SELECT format('%s %s', month, trim_scale(seconds)) AS piece
                FROM gpb_month_pieces('2026-11-30 23:50Z', '2026-12-01 00:50Z') ORDER BY month
                """
            ).map { try $0.decode("piece") }
        }
        XCTAssertEqual(pieces, ["2026-11-01 600", "2026-12-01 3000"])
        try await broker.pool.withConnection { c in
            // Last month: ten times the budget spent.
            try c.query(
                """
                INSERT INTO tenant_spend (tenant_id, month, adjusted_spend)
                VALUES ($1, (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month')::date, 36000)
                """,
                [UUID(uuidString: tenant.id)!])
        }
        let first = try await broker.call("POST", "/v1/allocations", token: tenant.token, json: Self.t4())
        XCTAssertEqual(first.status, 201, "last month's spend does not count: \(first.text)")
        let second = try await broker.call("POST", "/v1/allocations", token: tenant.token, json: Self.t4())
        XCTAssertEqual(second.status, 201, second.text)
        let third = try await broker.call("POST", "/v1/allocations", token: tenant.token, json: Self.t4())
        XCTAssertEqual(third.status, 403, third.text)
        let month = try await broker.pool.withConnection { c in
            try c.query("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM') AS m")[0].decode("m", as: String.self)
        }
        XCTAssertEqual(third.json["month"]?.string, month)
        XCTAssertEqual(third.json["used"]?.numberValue ?? 0, 1, accuracy: 1e-6)
    }

    /// `queue: true` over budget waits as pending and is admitted once budget frees; a
    /// request larger than the whole budget is refused at once.
    func testPendingRequestsAreAdmittedWhenBudgetFrees() async throws {
        let tenant = try await broker.tenant("queued", quota: ["spendPerMonth": 1])
        let a = try await broker.call("POST", "/v1/allocations", token: tenant.token, json: Self.t4())
        let b = try await broker.call("POST", "/v1/allocations", token: tenant.token, json: Self.t4())
        XCTAssertEqual([a.status, b.status], [201, 201])
        let waiting = try await broker.call(
            "POST", "/v1/allocations", token: tenant.token, json: Self.t4(lease: 800, ["queue": true]),
            headers: ["Idempotency-Key": "queued-1"])
        XCTAssertEqual(waiting.status, 202, waiting.text)
        XCTAssertEqual(waiting.json["status"], "pending")
        XCTAssertTrue(
            waiting.json["decisions"]!.array.contains { $0["reason"]!.string!.hasPrefix("waiting for budget") }, waiting.text)
        let batched = try await broker.call(
            "POST", "/v1/allocations", token: tenant.token, json: Self.t4(lease: 800, ["queue": true]))
        XCTAssertEqual(batched.status, 202, batched.text)
        let tooBig = try await broker.call(
            "POST", "/v1/allocations", token: tenant.token, json: Self.t4(replicas: 3, ["queue": true]))
        XCTAssertEqual(tooBig.status, 403, "1.5 never fits a budget of 1: \(tooBig.text)")

        let maintenance = MaintenanceStore(pool: broker.pool)
        let before = try await maintenance.admitPending()
        XCTAssertEqual(before.admitted, 0, "no budget has freed yet")
        let id = waiting.json["id"]!.string!
        let still = try await broker.call("GET", "/v1/allocations/\(id)", token: tenant.token)
        XCTAssertTrue(still.json["decisions"]!.array.contains { $0["reason"]!.string!.hasPrefix("waiting for budget") }, still.text)

        let released = try await broker.call("DELETE", "/v1/allocations/\(a.json["id"]!.string!)", token: tenant.token)
        XCTAssertEqual(released.status, 200, released.text)
        let after = try await maintenance.admitPending()
        XCTAssertEqual(after.admitted, 1, "the oldest waiting request (0.44) fits what the release gave back (0.5 less what ran)")
        let admitted = try await broker.call("GET", "/v1/allocations/\(id)", token: tenant.token)
        XCTAssertEqual(admitted.json["status"], "active", admitted.text)
        let other = try await broker.call("GET", "/v1/allocations/\(batched.json["id"]!.string!)", token: tenant.token)
        XCTAssertEqual(other.json["status"], "pending")
        let spend = try await counters(tenant.id).spend
        XCTAssertLessThanOrEqual(spend, 1)
    }

    func testBudgetsAreSetShownAndValidated() async throws {
        let tenant = try await broker.tenant("shown", quota: ["gpus": 4, "spendPerMonth": 250.5, "gpuHoursPerMonth": 100])
        let read = try await broker.call("GET", "/v1/admin/tenants?limit=100", token: broker.adminToken)
        let shown = read.json["tenants"]!.array.first { $0["id"]?.string == tenant.id }
        XCTAssertEqual(shown?["quota"]?["spendPerMonth"]?.numberValue, 250.5)
        XCTAssertEqual(shown?["quota"]?["gpuHoursPerMonth"]?.numberValue, 100)
        let bad = try await broker.call(
            "PATCH", "/v1/admin/tenants/\(tenant.id)", token: broker.adminToken, json: ["quota": ["spendPerMonth": -1]])
        XCTAssertEqual(bad.status, 422, bad.text)
        XCTAssertEqual(bad.json["errors"]?[0]?["field"], "quota.spendPerMonth")
    }

    /// A budget set on a tenant already running starts from the ledger: what it spent
    /// this month plus what its live leases commit.
    func testABudgetSetLaterCountsWhatIsAlreadyCommitted() async throws {
        let tenant = try await broker.tenant("late")
        for _ in 0..<3 {
            let created = try await broker.call("POST", "/v1/allocations", token: tenant.token, json: Self.t4())
            XCTAssertEqual(created.status, 201, created.text)
        }
        let set = try await broker.call(
            "PATCH", "/v1/admin/tenants/\(tenant.id)", token: broker.adminToken, json: ["quota": ["spendPerMonth": 2]])
        XCTAssertEqual(set.status, 200, set.text)
        let spend = try await counters(tenant.id).spend
        XCTAssertEqual(spend, 1.5, accuracy: 0.01, "three leases of 0.5")
        let fourth = try await broker.call("POST", "/v1/allocations", token: tenant.token, json: Self.t4())
        XCTAssertEqual(fourth.status, 201, fourth.text)
        let fifth = try await broker.call("POST", "/v1/allocations", token: tenant.token, json: Self.t4())
        XCTAssertEqual(fifth.status, 403, fifth.text)
    }

    /// What a lease has left is charged at the price in force: a price raised midway
    /// raises the commitment, a release gives back the rest of the lease.
    func testCountersFollowPriceChangesAndEarlyReleases() async throws {
        let tenant = try await broker.tenant("priced", quota: ["spendPerMonth": 100])
        let created = try await broker.call("POST", "/v1/allocations", token: tenant.token, json: Self.t4())
        XCTAssertEqual(created.status, 201, created.text)
        var spend = try await counters(tenant.id).spend
        XCTAssertEqual(spend, 0.5, accuracy: 1e-9, "2/h for 900 s")
        try await broker.pool("a", "t4", series: "T4", gpuMemory: 16, capacity: 200, price: 4)
        spend = try await counters(tenant.id).spend
        XCTAssertEqual(spend, 1, accuracy: 0.01, "the rest of the lease at 4/h")
        let released = try await broker.call("DELETE", "/v1/allocations/\(created.json["id"]!.string!)", token: tenant.token)
        XCTAssertEqual(released.status, 200, released.text)
        spend = try await counters(tenant.id).spend
        XCTAssertEqual(spend, 0, accuracy: 0.01, "only the seconds it ran")
        XCTAssertGreaterThan(spend, 0)
    }
}
