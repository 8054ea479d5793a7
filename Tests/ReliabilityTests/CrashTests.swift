import BrokerCore
import Foundation
import PostgresClient
import TestHarness
import TestSupport
import XCTest

func report(_ scenario: String, _ line: String) {
    print("RELIABILITY [\(scenario)] \(line)")
}

/// Scenarios 1 and 2: a broker process and the database server killed mid-load.
final class CrashTests: XCTestCase {
    /// Two brokers on one database, 16 clients, `kill -9` of one broker mid-load.
    func testBrokerKilledMidLoadLosesNothingAndDuplicatesNothing() throws {
        let url = try TestDatabase.create()
        let a = try BrokerProcess(databaseURL: url)
        let b = try BrokerProcess(databaseURL: url)
        defer { a.stop(); b.stop() }
        try a.waitReady()
        try b.waitReady()
        let token = try Seed.largePool(port: a.port)

        let load = AllocationLoad(clients: 16, ports: [a.port, b.port], token: token)
        Thread.sleep(forTimeInterval: 1.5)
        let before = load.outcomes.items.count
        a.kill9()
        Thread.sleep(forTimeInterval: 2.5)
        load.finish()

        let all = load.outcomes.items
        let acknowledged = all.filter { [200, 201].contains($0.status) }
        let inDoubt = all.filter { $0.inDoubt > 0 }
        XCTAssertGreaterThan(before, 0, "load ran before the kill")
        XCTAssertEqual(acknowledged.count, all.count, "every request answered 2xx in the end: \(all.filter { ![200, 201].contains($0.status) }.prefix(5))")
        XCTAssertTrue(all.allSatisfy { $0.ids.count <= 1 })

        let db = try database(url)
        let rows = try db.query("SELECT id::text AS id, labels->>'key' AS key FROM allocations")
        var byKey: [String: [String]] = [:]
        var ids = Set<String>()
        for row in rows {
            let id: String = try row.decode("id")
            ids.insert(id)
            byKey[try row.decode("key"), default: []].append(id)
        }
        let lost = acknowledged.filter { !ids.contains($0.allocationId ?? "") }
        let duplicated = byKey.filter { $0.value.count > 1 }
        XCTAssertEqual(lost.count, 0, "acknowledged allocations missing: \(lost.prefix(5).map(\.key))")
        XCTAssertEqual(duplicated.count, 0, "keys with more than one allocation: \(duplicated.prefix(5))")
        XCTAssertEqual(rows.count, Set(all.map(\.key)).count, "one allocation per logical request")
        // Every in-doubt key, replayed once more, answers the allocation it got.
        var replayMismatches = 0
        for outcome in inDoubt where Load.replay(port: b.port, token: token, key: outcome.key, body: Seed.allocation(key: outcome.key)) != outcome.allocationId {
            replayMismatches += 1
        }
        XCTAssertEqual(replayMismatches, 0)
        XCTAssertEqual(try sampleInvariants(db).disagreeing, 0)
        let check = try verify(url)
        XCTAssertEqual(check.status, 0, check.output)

        let name = "1 broker killed"
        report(name, "requests \(all.count) (attempts \(all.map(\.attempts).reduce(0, +))), clients 16, brokers 2, faults 1 (kill -9 after \(before) requests)")
        report(name, "acknowledged \(acknowledged.count), in-doubt (sent, no answer) retried with the same key \(inDoubt.count), refused connections retried elsewhere \(all.map(\.transportErrors).reduce(0, +) - all.map(\.inDoubt).reduce(0, +)), lost \(lost.count), duplicated \(duplicated.count), replay mismatches \(replayMismatches), verify exit \(check.status)")
    }

    /// `kill -9` of the postmaster mid-load and a restart 2 s later.
    func testPostgresKilledMidLoadAnswers503ThenRecovers() throws {
        defer {
            do { try TestCluster.ensureUp() } catch { XCTFail("cluster not restored: \(error)") }
        }
        let url = try TestDatabase.create()
        let broker = try BrokerProcess(databaseURL: url)
        defer { broker.stop() }
        try broker.waitReady()
        let token = try Seed.largePool(port: broker.port)

        let load = AllocationLoad(clients: 8, ports: [broker.port], token: token)
        let origin = load.origin
        let readiness = Collector<Attempt>()
        let probe = LoadRun(clients: 1) { _, _ in
            let started = Date()
            let status = (try? HTTP.request(port: broker.port, "GET", "/readyz", timeoutSeconds: 10))?.status ?? 0
            readiness.append(Attempt(
                started: started.timeIntervalSince(origin), seconds: Date().timeIntervalSince(started), status: status))
            usleep(200_000)
        }
        Thread.sleep(forTimeInterval: 1.5)
        let killedAt = Date().timeIntervalSince(origin)
        let backends = try TestCluster.killPostmaster()
        Thread.sleep(forTimeInterval: 2)
        // The database is back somewhere between `pg_ctl start` being run and returning:
        // the "down" window ends at the former, recovery is measured from it too (stricter).
        let restartAt = Date().timeIntervalSince(origin)
        try TestCluster.ensureUp()
        let backAt = Date().timeIntervalSince(origin)
        Thread.sleep(forTimeInterval: 6)
        load.finish()
        probe.finish()

        let all = load.outcomes.items
        let log = load.attempts.items
        // Attempts started after the kill settled and ended before the database returned.
        let whileDown = log.filter { $0.started > killedAt + 0.3 && $0.started + $0.seconds < restartAt }
        let servedWhileDown = whileDown.filter { [200, 201].contains($0.status) }
        let fiveHundreds = log.filter { $0.status >= 500 && $0.status != 503 }
        let without503RetryAfter = log.filter { $0.status == 503 && $0.retryAfter == nil }
        let slowest = log.map(\.seconds).max() ?? 0
        let firstServed = log.filter { [200, 201].contains($0.status) && $0.started >= restartAt }.map { $0.started + $0.seconds }.min()
        let recovery = (firstServed ?? .infinity) - restartAt
        let readyDown = readiness.items.filter { $0.started > killedAt + 0.3 && $0.started + $0.seconds < restartAt }
        let readyBack = readiness.items.filter { $0.status == 200 && $0.started >= restartAt }.map { $0.started + $0.seconds }.min()

        XCTAssertGreaterThan(whileDown.filter { $0.status == 503 }.count, 0, "503s while the database was down")
        XCTAssertEqual(servedWhileDown.count, 0)
        XCTAssertEqual(fiveHundreds.count, 0, "no 500 ever: \(fiveHundreds.prefix(5))")
        XCTAssertEqual(without503RetryAfter.count, 0, "every 503 carries Retry-After")
        XCTAssertLessThan(slowest, 5, "no request hangs past a few seconds")
        XCTAssertFalse(readyDown.isEmpty)
        XCTAssertTrue(readyDown.allSatisfy { $0.status == 503 }, "/readyz is 503 while down: \(readyDown.map(\.status))")
        XCTAssertLessThanOrEqual(recovery, 5, "serves again within 5 s of the database's return")

        let acknowledged = all.filter { [200, 201].contains($0.status) }
        let db = try database(url)
        let ids = Set(try db.query("SELECT id::text AS id FROM allocations").map { try $0.decode("id") as String })
        let duplicated = try db.query(
            "SELECT count(*)::int AS n FROM (SELECT labels->>'key' FROM allocations GROUP BY 1 HAVING count(*) > 1) d")[0]
            .decode("n", as: Int.self)
        let lost = acknowledged.filter { !ids.contains($0.allocationId ?? "") }
        XCTAssertEqual(lost.count, 0)
        XCTAssertEqual(duplicated, 0)
        XCTAssertTrue(all.allSatisfy { $0.badStatuses.isEmpty })
        let check = try verify(url)
        XCTAssertEqual(check.status, 0, check.output)

        let name = "2 postgres killed"
        report(name, "requests \(all.count) (attempts \(log.count)), clients 8, faults 1 (kill -9 postmaster and its \(backends) children at \(secs(killedAt)), pg_ctl start run at \(secs(restartAt)), returned at \(secs(backAt)))")
        report(name, "while down: \(whileDown.count) answers, 2xx \(servedWhileDown.count), 503 \(whileDown.filter { $0.status == 503 }.count), transport errors \(whileDown.filter { $0.status == 0 }.count), 500s overall \(fiveHundreds.count), slowest attempt \(secs(slowest)), readyz while down \(Set(readyDown.map(\.status)).sorted())")
        report(name, "recovery: first grant \(secs(recovery)) after pg_ctl start was run, readyz 200 after \(secs((readyBack ?? .infinity) - restartAt)); acknowledged \(acknowledged.count), lost \(lost.count), duplicated \(duplicated), verify exit \(check.status)")
    }
}
