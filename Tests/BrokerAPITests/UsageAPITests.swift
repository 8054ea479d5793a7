import BrokerCore
import BrokerStore
import Foundation
import JSON
import PostgresClient
import TestSupport
import XCTest

/// Usage reports against a scripted history (grants, scale-in, idle reuse, a price
/// change, preemption, expiry, release) whose charges the test works out on its own
/// from the allocations' ledger events and the pool's price history.
final class UsageAPITests: XCTestCase {
    var broker: TestBroker!

    override func setUp() async throws {
        broker = try TestBroker()
        try await broker.region("a", primary: true)
        try await broker.region("b")
        try await broker.pool("a", "t4", series: "T4", gpuMemory: 16, gpus: 2, capacity: 3, price: 3.6)
        try await broker.pool("b", "cpu", capacity: 4, price: 0.5, defer: 0)
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    static func gpu(_ qos: String, _ replicas: Int) -> JSONValue {
        ["computeClass": "gpu", "gpuSeries": ["T4"], "cpu": 4, "memoryGiB": 16, "qos": .string(qos),
         "replicas": .number(Double(replicas)), "region": "a"]
    }

    func grant(_ token: String, _ body: JSONValue) async throws -> String {
        let response = try await broker.call("POST", "/v1/allocations", token: token, json: body)
        XCTAssertEqual(response.status, 201, response.text)
        return try XCTUnwrap(response.json["id"]?.string)
    }

    func pause() async throws { try await Task.sleep(for: .milliseconds(250)) }

    static func date(_ text: String) throws -> Date {
        try Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    static func stamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt))
    }

    /// One charged interval as a client reads it from `GET /v1/allocations/{id}/events`.
    struct Interval {
        var tenant: String
        var qos: String
        var region: String
        var pool: String
        var gpus: Int
        var start: Date
        var end: Date?
    }

    /// Pairs each `reserved` row with the next row that ends the same instance in the allocation.
    func intervals(tenant: String, token: String, allocation: String, qos: String) async throws -> [Interval] {
        let events = try await broker.call("GET", "/v1/allocations/\(allocation)/events", token: token).json["events"]!.array
        var open: [String: Interval] = [:]
        var closed: [Interval] = []
        for event in events {
            guard let instance = event["instanceId"]?.string else { continue }
            let at = try Self.date(event["at"]!.string!)
            switch event["kind"]!.string! {
            case "reserved":
                let pool = event["poolId"]!.string!
                open[instance] = Interval(
                    tenant: tenant, qos: qos, region: event["region"]!.string!, pool: pool, gpus: pool == "t4" ? 2 : 0,
                    start: at)
            case "released", "expired", "preempted":
                if var interval = open.removeValue(forKey: instance) {
                    interval.end = at
                    closed.append(interval)
                }
            default: break
            }
        }
        return closed + open.values
    }

    struct Figures {
        var instanceHours = 0.0
        var gpuHours = 0.0
        var cost = 0.0
    }

    /// Seconds of each interval inside [from, to), at the price in force in each part.
    static func expected(
        _ intervals: [Interval], from: Date, to: Date, prices: [String: [(from: Date, price: Double)]],
        key: (Interval) -> String
    ) -> [String: Figures] {
        var result: [String: Figures] = [:]
        for interval in intervals {
            let start = max(interval.start, from)
            let end = min(interval.end ?? to, to)
            guard end > start else { continue }
            let seconds = end.timeIntervalSince(start)
            var figures = result[key(interval), default: Figures()]
            figures.instanceHours += seconds / 3600
            figures.gpuHours += seconds * Double(interval.gpus) / 3600
            let changes = prices["\(interval.region)/\(interval.pool)"]!
            for (index, change) in changes.enumerated() {
                let until = index + 1 < changes.count ? changes[index + 1].from : Date.distantFuture
                let part = min(end, until).timeIntervalSince(max(start, change.from))
                if part > 0 { figures.cost += part / 3600 * change.price }
            }
            result[key(interval)] = figures
        }
        return result
    }

    func testReportEqualsTheChargesWorkedOutFromTheLedgerToTheSecond() async throws {
        let (xToken, xId) = try await broker.tenant("x")
        let (yToken, yId) = try await broker.tenant("y")
        let from = Date()
        try await pause()
        let a1 = try await grant(xToken, Self.gpu("default", 2))
        let b1 = try await grant(yToken, Self.gpu("best-effort", 1))
        try await pause()
        // Scale-in: one of a1's instances turns idle (warm), charged to no one.
        let scaled = try await broker.call("PATCH", "/v1/allocations/\(a1)", token: xToken, json: ["replicas": 1])
        XCTAssertEqual(scaled.status, 200, scaled.text)
        try await pause()
        try await broker.pool("a", "t4", series: "T4", gpuMemory: 16, gpus: 2, capacity: 3, price: 7.2)
        try await pause()
        // Reuses the warm instance.
        let b2 = try await grant(yToken, Self.gpu("best-effort", 1))
        let reused = try await broker.call("GET", "/v1/allocations/\(b2)", token: yToken)
        XCTAssertEqual(reused.json["instances"]?[0]?["reused"], true)
        try await pause()
        // The pool is full: a default-QoS grant preempts b2's instance, the newest best-effort one.
        let a2 = try await grant(xToken, Self.gpu("default", 1))
        let c1 = try await grant(xToken, ["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 2, "region": "b"])
        try await pause()
        try await broker.pool.withConnection { c in
            try c.query("UPDATE allocations SET lease_expires_at = now() - interval '1 second' WHERE id = $1::uuid", [b1])
        }
        let expired = try await MaintenanceStore(pool: broker.pool).expireLeases()
        XCTAssertEqual(expired, 1)
        let released = try await broker.call("DELETE", "/v1/allocations/\(c1)", token: xToken)
        XCTAssertEqual(released.status, 200, released.text)
        try await pause()
        // Milliseconds, as the API prints them: the report and the test count the same window.
        let to = try Self.date(Self.stamp(Date()))
        try await pause()

        var history: [Interval] = []
        for (allocation, qos) in [(a1, "default"), (a2, "default"), (c1, "default")] {
            history += try await intervals(tenant: xId, token: xToken, allocation: allocation, qos: qos)
        }
        for allocation in [b1, b2] {
            history += try await intervals(tenant: yId, token: yToken, allocation: allocation, qos: "best-effort")
        }
        XCTAssertEqual(history.count, 7, "a1 2 (one until scale-in), b1 1, b2 1, a2 1, c1 2")
        XCTAssertEqual(history.filter { $0.end == nil }.count, 2, "a1's remaining instance and a2 still run")
        let prices = try await broker.pool.withConnection { c in
            try c.query("SELECT region_id || '/' || pool_id AS pool, effective_from, price_per_hour FROM pool_prices ORDER BY effective_from")
                .map { (pool: try $0.decode("pool", as: String.self), from: try $0.decode("effective_from", as: Date.self),
                        price: try $0.decode("price_per_hour", as: Double.self)) }
        }
        let priceHistory = Dictionary(grouping: prices, by: \.pool).mapValues { $0.map { (from: $0.from, price: $0.price) } }
        XCTAssertEqual(priceHistory["a/t4"]?.map(\.price), [3.6, 7.2], "the price change was kept")

        let query = "from=\(Self.stamp(from))&to=\(Self.stamp(to))"
        let admin = try await broker.call(
            "GET", "/v1/admin/usage?\(query)&groupBy=tenant,pool,qos", token: broker.adminToken)
        XCTAssertEqual(admin.status, 200, admin.text)
        let expected = Self.expected(history, from: from, to: to, prices: priceHistory) {
            "\($0.tenant) \($0.region)/\($0.pool) \($0.qos)"
        }
        let rows = admin.json["rows"]!.array
        XCTAssertEqual(rows.count, expected.count, admin.text)
        // Timestamps in answers have milliseconds: each interval's two ends may each be 1 ms off.
        let tolerance = 8 * 0.002 / 3600
        var reported: [String: Figures] = [:]
        for row in rows {
            let key = "\(row["tenant"]!.string!) \(row["region"]!.string!)/\(row["pool"]!.string!) \(row["qos"]!.string!)"
            reported[key] = Figures(
                instanceHours: row["instanceHours"]!.numberValue!, gpuHours: row["gpuHours"]!.numberValue!,
                cost: row["cost"]!.numberValue!)
        }
        for (key, want) in expected {
            let got = try XCTUnwrap(reported[key], "no row for \(key): \(admin.text)")
            XCTAssertEqual(got.instanceHours, want.instanceHours, accuracy: tolerance, key)
            XCTAssertEqual(got.gpuHours, want.gpuHours, accuracy: 2 * tolerance, key)
            XCTAssertEqual(got.cost, want.cost, accuracy: 7.2 * tolerance, key)
            XCTAssertGreaterThan(got.instanceHours, 0.2 / 3600, "every group ran at least 200 ms: \(key)")
        }
        print("usage: \(expected.count) groups; x T4 \(reported["\(xId) a/t4 default"]!.instanceHours * 3600) instance-seconds, cost \(reported["\(xId) a/t4 default"]!.cost)")

        // A tenant reads its own usage only, with the same figures.
        let own = try await broker.call("GET", "/v1/usage?\(query)&groupBy=region", token: xToken)
        XCTAssertEqual(own.status, 200, own.text)
        let ownExpected = Self.expected(history.filter { $0.tenant == xId }, from: from, to: to, prices: priceHistory) { $0.region }
        XCTAssertEqual(own.json["rows"]!.array.compactMap { $0["region"]?.string }, ["a", "b"])
        for row in own.json["rows"]!.array {
            XCTAssertEqual(row["cost"]!.numberValue!, ownExpected[row["region"]!.string!]!.cost, accuracy: 7.2 * tolerance)
        }
        XCTAssertEqual(
            own.json["total"]!["cost"]!.numberValue!, ownExpected.values.reduce(0) { $0 + $1.cost }, accuracy: 7.2 * tolerance)

        // By day (UTC): the days add up to the total.
        let byDay = try await broker.call("GET", "/v1/admin/usage?\(query)&groupBy=day,gpuSeries", token: broker.adminToken)
        let dayRows = byDay.json["rows"]!.array
        XCTAssertEqual(
            dayRows.reduce(0) { $0 + $1["cost"]!.numberValue! }, admin.json["total"]!["cost"]!.numberValue!, accuracy: 1e-9)
        XCTAssertTrue(dayRows.allSatisfy { $0["day"]?.string?.count == 10 })
        XCTAssertEqual(Set(dayRows.compactMap { $0["gpuSeries"]?.string }), ["T4"], "the CPU pool has no series")

        // CSV.
        let csv = try await broker.call(
            "GET", "/v1/admin/usage?\(query)&groupBy=tenant,pool", token: broker.adminToken, headers: ["Accept": "text/csv"])
        XCTAssertEqual(csv.header("Content-Type"), "text/csv; charset=utf-8")
        let lines = csv.text.split(separator: "\r\n")
        XCTAssertEqual(lines.first, "tenant,region,pool,instanceHours,gpuHours,cost")
        XCTAssertEqual(lines.count, 1 + 3, csv.text)
    }

    func testRunningInstancesCountUpToTheWindowsEndAndIdleTimeIsNotCharged() async throws {
        let (token, _) = try await broker.tenant("x")
        let id = try await grant(token, Self.gpu("default", 1))
        try await pause()
        let released = try await broker.call("DELETE", "/v1/allocations/\(id)", token: token)
        XCTAssertEqual(released.status, 200)
        let events = try await broker.call("GET", "/v1/allocations/\(id)/events", token: token).json["events"]!.array
        let start = try Self.date(events[0]["at"]!.string!)
        let end = try Self.date(events[1]["at"]!.string!)
        try await pause()  // idle (warm) from here: not charged
        let middle = start.addingTimeInterval(end.timeIntervalSince(start) / 2)
        let half = try await broker.call("GET", "/v1/usage?from=\(Self.stamp(start))&to=\(Self.stamp(middle))", token: token)
        XCTAssertEqual(half.json["total"]!["instanceHours"]!.numberValue!, middle.timeIntervalSince(start) / 3600, accuracy: 0.002 / 3600)
        let all = try await broker.call("GET", "/v1/usage?from=\(Self.stamp(start.addingTimeInterval(-60)))", token: token)
        XCTAssertEqual(all.json["total"]!["instanceHours"]!.numberValue!, end.timeIntervalSince(start) / 3600, accuracy: 0.002 / 3600)
        XCTAssertEqual(all.json["total"]!["gpuHours"]!.numberValue!, 2 * end.timeIntervalSince(start) / 3600, accuracy: 0.004 / 3600)
        XCTAssertEqual(all.json["rows"]!.array.count, 1)
        let later = try await broker.call(
            "GET", "/v1/usage?from=\(Self.stamp(end.addingTimeInterval(0.01)))", token: token)
        XCTAssertEqual(later.json["rows"]!.array.count, 0, later.text)
        XCTAssertEqual(later.json["total"]!["cost"]!.numberValue, 0)
    }

    func testBadQueriesAre422AndTenantsSeeOnlyTheirOwn() async throws {
        let (token, _) = try await broker.tenant("x")
        for query in ["groupBy=colour", "groupBy=day,day", "from=yesterday",
                      "tenant=00000000-0000-0000-0000-000000000001", "since=2026-01-01"] {
            let response = try await broker.call("GET", "/v1/usage?\(query)", token: token)
            XCTAssertEqual(response.status, 422, "\(query): \(response.text)")
            XCTAssertEqual(response.json["code"], "validation_failed")
        }
        let bad = try await broker.call("GET", "/v1/admin/usage?tenant=nope", token: broker.adminToken)
        XCTAssertEqual(bad.status, 422)
        let forbidden = try await broker.call("GET", "/v1/admin/usage", token: token)
        XCTAssertEqual(forbidden.status, 403)
        let adminOnTenantRoute = try await broker.call("GET", "/v1/usage", token: broker.adminToken)
        XCTAssertEqual(adminOnTenantRoute.status, 403)
        let backwards = try await broker.call("GET", "/v1/usage?from=2026-11-02&to=2026-11-01", token: token)
        XCTAssertEqual(backwards.status, 200, "a window that ends before it starts is empty")
        XCTAssertEqual(backwards.json["rows"]?.array.count, 0)
        let early = try await broker.call("GET", "/v1/usage?from=0000-01-01t00:00:00z", token: token)
        XCTAssertEqual(early.json["from"], "1970-01-01T00:00:00.000Z", early.text)
        let empty = try await broker.call("GET", "/v1/usage?from=2026-01-01T00:00:00Z&groupBy=pool", token: token)
        XCTAssertEqual(empty.status, 200, empty.text)
        XCTAssertEqual(empty.json["rows"]?.array.count, 0)
        XCTAssertEqual(empty.json["groupBy"], ["pool"])
    }
}
