import BrokerCore
import Foundation
import PostgresClient
import TestHarness
import TestSupport
import XCTest

/// Scenario 6: the workers run in three broker processes at once; each lease expires
/// once and each idle instance is deprovisioned once.
final class CrossProcessWorkerTests: XCTestCase {
    func testThreeBrokersExpireAndDeprovisionEachExactlyOnce() throws {
        let allocations = 400
        let url = try TestDatabase.create()
        let brokers = try (0..<3).map { _ in try BrokerProcess(databaseURL: url, reconcileInterval: 1) }
        defer { brokers.forEach { $0.stop() } }
        for broker in brokers { try broker.waitReady() }
        let admin = brokers[0].port
        try Seed.region(port: admin, "r1", primary: true)
        try Seed.pool(port: admin, region: "r1", "p1", capacity: 10_000)
        let token = try Seed.tenant(port: admin)

        let failures = Counter()
        let join = startThreads(8) { client in
            for index in stride(from: client, to: allocations, by: 8) {
                let reply = try? HTTP.request(
                    port: brokers[index % 3].port, "POST", "/v1/allocations", token: token,
                    json: Seed.allocation(replicas: index % 2 + 1, key: "w\(index)"))
                if reply?.status != 201 { failures.increment() }
            }
        }
        join()
        XCTAssertEqual(failures.count, 0)
        let db = try database(url)
        let instances = try db.query("SELECT count(*)::int AS n FROM instances WHERE state = 'running'")[0].decode("n", as: Int.self)

        // Every lease ran out a minute ago.
        var started = Date()
        try db.executeScript("UPDATE allocations SET lease_expires_at = now() - interval '1 minute'")
        var live = -1
        while Date().timeIntervalSince(started) < 30 {
            live = try db.query("SELECT count(*)::int AS n FROM allocations WHERE status IN ('active', 'partial')")[0].decode("n")
            if live == 0 { break }
            usleep(200_000)
        }
        let expiredIn = Date().timeIntervalSince(started)
        XCTAssertEqual(live, 0, "every lease expired within 30 s")
        let expired = try db.query(
            """
            SELECT count(*)::int AS rows, count(DISTINCT instance_id)::int AS instances,
                   (SELECT count(*)::int FROM (SELECT instance_id FROM ledger WHERE kind = 'expired'
                                               GROUP BY instance_id HAVING count(*) > 1) d) AS twice
            FROM ledger WHERE kind = 'expired'
            """)[0]
        XCTAssertEqual(try expired.decode("rows", as: Int.self), instances)
        XCTAssertEqual(try expired.decode("instances", as: Int.self), instances)
        XCTAssertEqual(try expired.decode("twice", as: Int.self), 0)

        // Every idle instance has been idle an hour: past the pool's scale-in delay.
        started = Date()
        try db.executeScript("UPDATE instances SET idle_since = now() - interval '1 hour' WHERE state = 'idle'")
        var idle = -1
        while Date().timeIntervalSince(started) < 30 {
            idle = try db.query("SELECT count(*)::int AS n FROM instances WHERE state = 'idle'")[0].decode("n")
            if idle == 0 { break }
            usleep(200_000)
        }
        let deprovisionedIn = Date().timeIntervalSince(started)
        XCTAssertEqual(idle, 0)
        let gone = try db.query(
            """
            SELECT count(*)::int AS rows, count(DISTINCT instance_id)::int AS instances
            FROM ledger WHERE kind = 'deprovisioned'
            """)[0]
        XCTAssertEqual(try gone.decode("rows", as: Int.self), instances)
        XCTAssertEqual(try gone.decode("instances", as: Int.self), instances)
        let counters = try db.query("SELECT allocated, idle FROM pools")[0]
        XCTAssertEqual(try counters.decode("allocated", as: Int.self), 0)
        XCTAssertEqual(try counters.decode("idle", as: Int.self), 0)
        let check = try verify(url)
        XCTAssertEqual(check.status, 0, check.output)

        let name = "6 workers across processes"
        report(name, "brokers 3 (--reconcile-interval 1), allocations \(allocations), instances \(instances)")
        report(name, "expired in \(secs(expiredIn)): ledger rows \(try expired.decode("rows", as: Int.self)) for \(instances) instances, twice \(try expired.decode("twice", as: Int.self)); deprovisioned in \(secs(deprovisionedIn)): ledger rows \(try gone.decode("rows", as: Int.self)); verify exit \(check.status)")
    }
}
