import BrokerCore
import Foundation
import PostgresClient
import Synchronization
import TestHarness
import TestSupport
import XCTest

/// Scenarios 3 and 4: overbooking under contention, and SIGTERM under load.
final class StressTests: XCTestCase {
    /// Three brokers, 64 clients, pools holding 70% of the demand. The issue asks for
    /// 20,000 requests; CI on 2 cores gets `requests` (a few thousand) instead.
    func testOverbookingStressNeverOverbooksNorLeaks() throws {
        let requests = 3_000
        let clients = 64
        let url = try TestDatabase.create()
        let brokers = try (0..<3).map { _ in try BrokerProcess(databaseURL: url) }
        defer { brokers.forEach { $0.stop() } }
        for broker in brokers { try broker.waitReady() }
        let admin = brokers[0].port
        // Demand: replicas 1, 2, 3 in turn: 2 per request on average.
        let demand = requests * 2
        let capacity = demand * 7 / 10
        try Seed.region(port: admin, "r1", primary: true)
        try Seed.region(port: admin, "r2", primary: false)
        let shares = [("r1", "small", 0.3, 1.0), ("r1", "large", 0.2, 1.5), ("r2", "small", 0.3, 1.2), ("r2", "large", 0.2, 1.7)]
        var seeded = 0
        for (index, (region, pool, share, price)) in shares.enumerated() {
            let units = index == shares.count - 1 ? capacity - seeded : Int(Double(capacity) * share)
            seeded += units
            try Seed.pool(port: admin, region: region, pool, capacity: units, price: price)
        }
        let token = try Seed.tenant(port: admin)
        let ports = brokers.map(\.port)

        let outcomes = Collector<Outcome>()
        let released = Collector<String>()
        // What each failed release answered (or the transport error), to tell load from a fault.
        let releaseFailures = Collector<String>()
        let stopSampling = Flag()
        let samples = Collector<(overbooked: Int, disagreeing: Int)>()
        let sampleErrors = Counter()
        let joinSampler = startThreads(1) { _ in
            guard let db = try? database(url) else { sampleErrors.increment(); return }
            while !stopSampling.isSet {
                if let sample = try? sampleInvariants(db) { samples.append(sample) } else { sampleErrors.increment() }
                Thread.sleep(forTimeInterval: 1)
            }
        }
        let started = Date()
        let join = startThreads(clients) { client in
            var n = 0
            var index = client
            while index < requests {
                let key = "c\(client)-\(n)"
                let body = Seed.allocation(replicas: index % 3 + 1, key: key, allOrNothing: index % 5 != 0)
                let outcome = Load.allocate(ports: ports, first: client % 3, token: token, key: key, body: body)
                outcomes.append(outcome)
                // Every fourth grant is released at once: its instances turn idle and are reused.
                if let id = outcome.allocationId, n % 4 == 3 {
                    do {
                        let reply = try HTTP.request(port: ports[(client + 1) % 3], "DELETE", "/v1/allocations/\(id)", token: token)
                        if reply.status == 200 {
                            released.append(id)
                        } else {
                            releaseFailures.append("\(id): \(reply.status) \(String(decoding: reply.body.prefix(300), as: UTF8.self))")
                        }
                    } catch {
                        releaseFailures.append("\(id): \(error)")
                    }
                }
                n += 1
                index += clients
            }
        }
        join()
        let elapsed = Date().timeIntervalSince(started)
        stopSampling.set()
        joinSampler()

        let all = outcomes.items
        let granted = all.filter { [200, 201].contains($0.status) }
        let refused = all.filter { $0.status == 409 }
        let bad = all.filter { !$0.badStatuses.isEmpty || $0.status == 0 }
        let releasedIds = Set(released.items)
        let heldUnits = granted.filter { !releasedIds.contains($0.allocationId ?? "") }.map(\.placed).reduce(0, +)

        let db = try database(url)
        let final = try sampleInvariants(db)
        let row = try db.query(
            """
            SELECT (SELECT count(*)::int FROM instances WHERE state = 'running') AS running,
                   (SELECT count(*)::int FROM instances WHERE state = 'idle') AS idle,
                   (SELECT coalesce(sum(allocated), 0)::int FROM pools) AS allocated,
                   (SELECT coalesce(sum(capacity), 0)::int FROM pools) AS capacity
            """)[0]
        let running: Int = try row.decode("running")
        let idle: Int = try row.decode("idle")
        let allocated: Int = try row.decode("allocated")
        let overbookedSamples = samples.items.filter { $0.overbooked > 0 }.count
        let disagreeingSamples = samples.items.filter { $0.disagreeing > 0 }.count
        XCTAssertEqual(bad.count, 0, "unexpected answers: \(bad.prefix(5))")
        XCTAssertGreaterThan(refused.count, 0, "demand exceeded capacity")
        XCTAssertEqual(overbookedSamples, 0)
        XCTAssertEqual(disagreeingSamples, 0)
        XCTAssertEqual(final.overbooked, 0)
        XCTAssertEqual(final.disagreeing, 0)
        XCTAssertEqual(running, heldUnits, "running instances equal the units clients hold: nothing leaked")
        XCTAssertEqual(releaseFailures.items, [], "every release answered 200")
        XCTAssertGreaterThan(samples.items.count, 0)
        let check = try verify(url)
        XCTAssertEqual(check.status, 0, check.output)

        let name = "3 overbooking stress"
        report(name, "requests \(all.count) (+\(releasedIds.count) releases) in \(secs(elapsed)) (\(Int(Double(all.count) / elapsed)) req/s), clients \(clients), brokers 3, demand \(demand) units, capacity \(capacity) (70%)")
        report(name, "granted \(granted.count), refused 409 \(refused.count), 503s retried \(all.map(\.unavailable).reduce(0, +)), unexpected \(bad.count); units running \(running) = held by clients \(heldUnits), idle \(idle), allocated \(allocated)/\(capacity)")
        report(name, "samples \(samples.items.count) (1/s, errors \(sampleErrors.count)): overbooked \(overbookedSamples), ledger disagreeing \(disagreeingSamples); verify exit \(check.status)")
    }

    /// SIGTERM under load: in-flight requests complete, later ones are refused cleanly,
    /// exit 0, the ledger is whole.
    func testGracefulShutdownUnderLoad() throws {
        let url = try TestDatabase.create()
        let broker = try BrokerProcess(databaseURL: url)
        defer { broker.stop() }
        try broker.waitReady()
        let token = try Seed.largePool(port: broker.port)

        struct Result: Sendable {
            var key: String
            var started: Date
            var ended: Date
            var status: Int
            var id: String?
            var received: Int
        }
        let results = Collector<Result>()
        let load = LoadRun(clients: 16) { _, key in
            let started = Date()
            do {
                let reply = try HTTP.request(
                    port: broker.port, "POST", "/v1/allocations", token: token, json: Seed.allocation(key: key),
                    headers: ["Idempotency-Key": key], timeoutSeconds: 20)
                results.append(Result(key: key, started: started, ended: Date(), status: reply.status, id: reply.json["id"]?.stringValue, received: 0))
            } catch {
                let received = (error as? TransportError)?.received ?? 0
                results.append(Result(key: key, started: started, ended: Date(), status: 0, id: nil, received: received))
                usleep(20_000)
            }
        }
        Thread.sleep(forTimeInterval: 1.5)
        let signalled = Date()
        kill(broker.pid, SIGTERM)
        let deadline = Date().addingTimeInterval(20)
        while broker.process.isRunning && Date() < deadline { usleep(20_000) }
        let exitedAfter = Date().timeIntervalSince(signalled)
        Thread.sleep(forTimeInterval: 0.5)
        load.finish()
        XCTAssertFalse(broker.process.isRunning, "exited within 20 s")
        broker.process.waitUntilExit()

        let all = results.items
        let beforeSignal = all.filter { $0.started < signalled.addingTimeInterval(-0.1) }
        let unanswered = beforeSignal.filter { $0.status == 0 }
        let halfWritten = all.filter { $0.received > 0 }
        let errors = all.filter { $0.status >= 500 && $0.status != 503 }
        let refused = all.filter { $0.status == 0 || $0.status == 503 }
        let acknowledged = all.filter { [200, 201].contains($0.status) }
        let db = try database(url)
        let ids = Set(try db.query("SELECT id::text AS id FROM allocations").map { try $0.decode("id") as String })
        let lost = acknowledged.filter { !ids.contains($0.id ?? "") }
        XCTAssertEqual(broker.process.terminationStatus, 0)
        XCTAssertEqual(broker.process.terminationReason, .exit)
        XCTAssertEqual(unanswered.count, 0, "requests sent before SIGTERM all got an answer")
        XCTAssertEqual(halfWritten.count, 0, "no half-written answer")
        XCTAssertEqual(errors.count, 0)
        XCTAssertEqual(lost.count, 0)
        XCTAssertGreaterThan(all.filter { $0.started > signalled.addingTimeInterval(exitedAfter) }.count, 0, "load continued after exit")
        let check = try verify(url)
        XCTAssertEqual(check.status, 0, check.output)

        let name = "4 graceful shutdown"
        report(name, "requests \(all.count), clients 16, faults 1 (SIGTERM after \(beforeSignal.count) requests); exit \(broker.process.terminationStatus) after \(secs(exitedAfter))")
        report(name, "sent before SIGTERM unanswered \(unanswered.count), half-written \(halfWritten.count), 5xx other than 503 \(errors.count), refused after (connection refused or 503) \(refused.count), acknowledged \(acknowledged.count), lost \(lost.count), verify exit \(check.status)")
    }
}
