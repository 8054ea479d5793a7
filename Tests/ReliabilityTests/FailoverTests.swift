import BrokerCore
import Foundation
import PostgresClient
import TestHarness
import TestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Scenario 7: a primary and a streaming standby of its own (not the shared test
/// cluster), a multi-host URL with target_session_attrs=read-write; the primary is
/// stopped mid-load and the standby promoted.
final class FailoverTests: XCTestCase {
    func pg(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        guard let binDir = TestCluster.binDir else { throw XCTSkip("GPUBROKER_TEST_PG_BINDIR is not set") }
        if let user = TestCluster.environment["GPUBROKER_TEST_PG_RUNAS"], !user.isEmpty {
            return try runTool("/usr/sbin/runuser", ["-u", user, "--", binDir + "/" + tool] + arguments)
        }
        return try runTool(binDir + "/" + tool, arguments)
    }

    func append(_ path: String, _ text: String) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(text.utf8))
        handle.closeFile()
    }

    func testPromotedStandbyServesWithinTenSecondsAndKeepsEveryGrant() throws {
        let directory = "/tmp/gpb-failover-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        chmod(directory, 0o777)
        let primary = directory + "/primary", standby = directory + "/standby"
        defer {
            _ = try? pg("pg_ctl", ["-D", primary, "-m", "immediate", "-w", "stop"])
            _ = try? pg("pg_ctl", ["-D", standby, "-m", "immediate", "-w", "stop"])
            try? FileManager.default.removeItem(atPath: directory)
        }
        let p1 = try freePort(), p2 = try freePort()
        let initdb = try pg("initdb", ["-D", primary, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
        XCTAssertEqual(initdb.status, 0, initdb.output)
        // Synchronous replication: a commit is acknowledged once the standby has it, so
        // a promoted standby holds every acknowledged grant.
        try append(primary + "/postgresql.conf", """

            listen_addresses = '127.0.0.1'
            port = \(p1)
            unix_socket_directories = '\(directory)'
            synchronous_standby_names = '*'
            fsync = off

            """)
        var result = try pg("pg_ctl", ["-D", primary, "-l", directory + "/primary.log", "-w", "start"])
        XCTAssertEqual(result.status, 0, result.output)
        result = try pg("pg_basebackup", ["-h", "127.0.0.1", "-p", "\(p1)", "-U", "postgres", "-D", standby, "-R", "-X", "stream"])
        XCTAssertEqual(result.status, 0, result.output)
        try append(standby + "/postgresql.conf", "\nport = \(p2)\nsynchronous_standby_names = ''\n")
        result = try pg("pg_ctl", ["-D", standby, "-l", directory + "/standby.log", "-w", "start"])
        XCTAssertEqual(result.status, 0, result.output)
        let admin = try PostgresConnection.connect(PostgresConfiguration(url: "postgresql://postgres@127.0.0.1:\(p1)/postgres"))
        try admin.executeScript("CREATE DATABASE gpubroker")
        let url = "postgresql://postgres@127.0.0.1:\(p1),127.0.0.1:\(p2)/gpubroker?target_session_attrs=read-write&connect_timeout=2"

        let broker = try BrokerProcess(databaseURL: url)
        defer { broker.stop() }
        try broker.waitReady()
        let token = try Seed.largePool(port: broker.port)

        let load = AllocationLoad(clients: 8, ports: [broker.port], token: token)
        let origin = load.origin
        Thread.sleep(forTimeInterval: 1.5)
        let stoppedAt = Date().timeIntervalSince(origin)
        result = try pg("pg_ctl", ["-D", primary, "-m", "immediate", "-w", "stop"])
        XCTAssertEqual(result.status, 0, result.output)
        result = try pg("pg_ctl", ["-D", standby, "-w", "promote"])
        XCTAssertEqual(result.status, 0, result.output)
        let promotedAt = Date().timeIntervalSince(origin)
        Thread.sleep(forTimeInterval: 8)
        load.finish()

        let all = load.outcomes.items
        let log = load.attempts.items
        let firstServed = log.filter { [200, 201].contains($0.status) && $0.started >= stoppedAt }.map { $0.started + $0.seconds }.min()
        let continuedAfter = (firstServed ?? .infinity) - stoppedAt
        let fiveHundreds = log.filter { $0.status >= 500 && $0.status != 503 }
        XCTAssertLessThanOrEqual(continuedAfter, 10, "serving again within 10 s of the primary's stop")
        XCTAssertEqual(fiveHundreds.count, 0)
        let acknowledged = all.filter { [200, 201].contains($0.status) }
        let db = try PostgresConnection.connect(PostgresConfiguration(url: "postgresql://postgres@127.0.0.1:\(p2)/gpubroker"))
        let ids = Set(try db.query("SELECT id::text AS id FROM allocations").map { try $0.decode("id") as String })
        let lost = acknowledged.filter { !ids.contains($0.allocationId ?? "") }
        let duplicated = try db.query(
            "SELECT count(*)::int AS n FROM (SELECT labels->>'key' FROM allocations GROUP BY 1 HAVING count(*) > 1) d")[0]
            .decode("n", as: Int.self)
        XCTAssertEqual(lost.count, 0)
        XCTAssertEqual(duplicated, 0)
        let check = try verify(url)
        XCTAssertEqual(check.status, 0, check.output)

        let name = "7 standby failover"
        report(name, "requests \(all.count) (attempts \(log.count)), clients 8, faults 1 (primary stopped -m immediate at \(secs(stoppedAt)), standby promoted at \(secs(promotedAt)))")
        report(name, "first grant \(secs(continuedAfter)) after the primary's stop; 503s \(log.filter { $0.status == 503 }.count), transport errors \(log.filter { $0.status == 0 }.count), 500s \(fiveHundreds.count); acknowledged \(acknowledged.count), lost \(lost.count), duplicated \(duplicated), verify exit \(check.status)")
    }
}
