import BrokerCore
import Foundation
import PostgresClient
import TestHarness
import TestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Scenario 8: `scripts/ha-demo` (pg_auto_failover: monitor, primary, secondary); the
/// primary's keeper and postgres are killed mid-load and the monitor promotes the
/// secondary. The broker runs on, unrestarted, on the multi-host URL the script printed.
final class AutoFailoverTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// Starts `path` in the background with posix_spawn, output to `log`.
    func spawn(_ path: String, _ arguments: [String], environment: [String: String], log: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let command = [path] + arguments
        var argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let merged = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        var envp: [UnsafeMutablePointer<CChar>?] = merged.map { strdup("\($0)=\($1)") } + [nil]
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, nil, &argv, &envp)
        guard spawned == 0 else { throw TestSetupError("cannot run \(path): errno \(spawned)") }
        return pid
    }

    /// The processes whose command line contains every one of `parts`, and all their
    /// descendants (a keeper's children rename themselves), from /proc.
    func processTrees(matching parts: [String]) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        var parent: [pid_t: pid_t] = [:]
        var roots: [pid_t] = []
        for entry in entries {
            guard let pid = pid_t(entry),
                let line = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
                    .map({ String(decoding: $0.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self) }),
                let stat = FileManager.default.contents(atPath: "/proc/\(entry)/stat")
                    .map({ String(decoding: $0, as: UTF8.self) }),
                let close = stat.lastIndex(of: ")")
            else { continue }
            // stat: "pid (name) state ppid ...": the name may hold spaces, so after the ")".
            parent[pid] = pid_t(stat[stat.index(close, offsetBy: 2)...].split(separator: " ")[1])
            if parts.allSatisfy({ line.contains($0) }) { roots.append(pid) }
        }
        var tree = roots
        var added = true
        while added {
            let more = parent.filter { tree.contains($0.value) && !tree.contains($0.key) }.map(\.key)
            tree += more
            added = !more.isEmpty
        }
        return tree
    }

    func testMonitorPromotesTheSecondaryAndBrokersKeepEveryGrant() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/pg_autoctl") else {
            throw XCTSkip("pg_autoctl is not installed (scripts/install-deps installs postgresql-15-auto-failover)")
        }
        let directory = "/tmp/gpb-ha-\(UUID().uuidString.prefix(8))"
        let urlFile = directory + ".url"
        let demo = try spawn(
            "/bin/bash", [Self.root + "/scripts/ha-demo", directory], environment: ["HA_DEMO_URL_FILE": urlFile],
            log: directory + ".log")
        defer {
            kill(demo, SIGTERM)
            var status: Int32 = 0
            while waitpid(demo, &status, 0) == -1 && errno == EINTR {}
            try? FileManager.default.removeItem(atPath: directory)
            unlink(urlFile)
            unlink(directory + ".log")
        }
        let started = Date()
        while !FileManager.default.fileExists(atPath: urlFile) {
            guard Date().timeIntervalSince(started) < 90 else {
                throw TestSetupError("ha-demo not ready: \((try? String(contentsOfFile: directory + ".log", encoding: .utf8)) ?? "")")
            }
            usleep(200_000)
        }
        let printed = try String(contentsOfFile: urlFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let url = printed + "&connect_timeout=2"
        let setupSeconds = Date().timeIntervalSince(started)

        let broker = try BrokerProcess(databaseURL: url)
        defer { broker.stop() }
        try broker.waitReady()
        try Seed.region(port: broker.port, "r1", primary: true)
        try Seed.pool(port: broker.port, region: "r1", "p1", capacity: 1_000_000)
        let token = try Seed.tenant(port: broker.port)

        let origin = Date()
        let stop = Flag()
        let outcomes = Collector<Outcome>()
        let attempts = Collector<Attempt>()
        let join = startThreads(8) { client in
            var n = 0
            while !stop.isSet {
                let key = "c\(client)-\(n)"
                outcomes.append(Load.allocate(
                    ports: [broker.port], first: 0, token: token, key: key, body: Seed.allocation(key: key),
                    origin: origin, attempts: attempts))
                n += 1
            }
        }
        Thread.sleep(forTimeInterval: 1.5)
        // node1 was created first: the primary. Its keeper (with the child that restarts
        // postgres) first, so nothing brings the old primary back.
        let primaryPid = try String(contentsOfFile: directory + "/node1/postmaster.pid", encoding: .utf8)
            .split(separator: "\n")[0]
        let killedAt = Date().timeIntervalSince(origin)
        for pid in processTrees(matching: ["pg_autoctl", directory + "/node1"]) { kill(pid, SIGKILL) }
        kill(pid_t(primaryPid)!, SIGKILL)
        // Serving again, then a while longer on the promoted secondary.
        var served: Double? = nil
        while Date().timeIntervalSince(origin) - killedAt < 60 {
            served = attempts.items.filter { [200, 201].contains($0.status) && $0.started >= killedAt }
                .map { $0.started + $0.seconds }.min()
            if served != nil { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        Thread.sleep(forTimeInterval: 3)
        stop.set()
        join()

        let all = outcomes.items
        let log = attempts.items
        let downtime = (served ?? .infinity) - killedAt
        let fiveHundreds = log.filter { $0.status >= 500 && $0.status != 503 }
        XCTAssertLessThan(downtime, 60, "the monitor promoted the secondary and the broker served again")
        XCTAssertEqual(fiveHundreds.count, 0)
        let acknowledged = all.filter { [200, 201].contains($0.status) }
        let secondaryPort = printed.split(separator: ",")[1].split(separator: "/")[0].split(separator: ":")[1]
        let db = try PostgresConnection.connect(
            PostgresConfiguration(url: "postgresql://postgres@127.0.0.1:\(secondaryPort)/gpubroker"))
        let ids = Set(try db.query("SELECT id::text AS id FROM allocations").map { try $0.decode("id") as String })
        let lost = acknowledged.filter { !ids.contains($0.allocationId ?? "") }
        XCTAssertEqual(lost.count, 0, "every acknowledged grant is on the promoted secondary")
        let check = try verify(url)
        XCTAssertEqual(check.status, 0, check.output)

        let name = "8 pg_auto_failover"
        report(name, "cluster ready in \(secs(setupSeconds)); requests \(all.count) (attempts \(log.count)), clients 8; primary's keeper and postgres killed (SIGKILL) at \(secs(killedAt))")
        report(name, "no service for \(secs(downtime)) (first grant after the kill); 503s \(log.filter { $0.status == 503 }.count), transport errors \(log.filter { $0.status == 0 }.count), 500s \(fiveHundreds.count); acknowledged \(acknowledged.count), lost \(lost.count), verify exit \(check.status)")
    }
}
