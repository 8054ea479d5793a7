import Foundation
import PostgresClient
import TestHarness
import TestSupport
import XCTest
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The `gpubroker` binary as users run it.
final class ExecutableTests: XCTestCase {
    var binary: URL { Binary.url }

    func status(_ url: String) async -> Int? {
        var request = URLRequest(url: URL(string: url)!)
        request.timeoutInterval = 2
        guard let (_, response) = try? await URLSession.shared.data(for: request) else { return nil }
        return (response as? HTTPURLResponse)?.statusCode
    }

    func waitUntilReady(_ port: Int, within seconds: Double) async throws -> Double {
        let started = Date()
        while Date().timeIntervalSince(started) < seconds {
            if await status("http://127.0.0.1:\(port)/readyz") == 200 { return Date().timeIntervalSince(started) }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw TestSetupError("not ready within \(seconds) s")
    }

    func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try runProcess(binary, arguments)
    }

    func postgresProcesses(using directory: String) throws -> [String] {
        let (_, output) = try runTool("/bin/ps", ["-eo", "args"])
        return output.split(separator: "\n").map(String.init).filter { $0.contains(directory) && $0.contains("postgres") }
    }

    func runTool(_ path: String, _ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    func testEmbeddedModeStartsReadyAndStopsCleanlyOnSIGTERM() async throws {
        let directory = "/tmp/gpb-e2e-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (attempt, limit) in [(1, 30.0), (2, 5.0)] {
            let port = try freePort()
            let process = Process()
            process.executableURL = binary
            process.arguments = ["serve", "--data-dir", directory, "--listen", "127.0.0.1:\(port)", "--demo", "--log-level", "warning"]
            process.standardError = FileHandle.nullDevice
            try process.run()
            let seconds = try await waitUntilReady(port, within: limit)
            print("embedded start \(attempt): ready in \(String(format: "%.1f", seconds)) s")
            let tokenFile = FileManager.default.fileExists(atPath: directory + "/admin-token")
            XCTAssertTrue(tokenFile, "the generated admin token is kept in the data directory")
            let healthz = await status("http://127.0.0.1:\(port)/healthz")
            XCTAssertEqual(healthz, 200)
            let metrics = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/metrics")!)
            let text = String(decoding: metrics.0, as: UTF8.self)
            XCTAssertTrue(text.contains("http_requests_total"), "Prometheus text counts requests by route and status")
            XCTAssertTrue(text.contains("route=\"/readyz\""), text)
            // /healthz answers on the HTTP thread and is counted like every route.
            let lines = text.split(separator: "\n")
            for family in ["http_requests_total{", "http_request_duration_seconds_count{"] {
                XCTAssertTrue(
                    lines.contains { $0.hasPrefix(family) && $0.contains("route=\"/healthz\"") && $0.contains("status=\"200\"") },
                    "\(family) for /healthz in:\n\(text)")
            }
            let spec = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/openapi.yaml")!)
            XCTAssertTrue(String(decoding: spec.0, as: UTF8.self).hasPrefix("openapi: 3.1"))
            let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/admin-token")
            XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
            process.terminate()
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 0)
            XCTAssertEqual(try postgresProcesses(using: directory), [], "no postgres process outlives the broker")
        }
    }

    func testMigrateAndVerify() throws {
        let url = try TestDatabase.create()
        let migrate = try run(["migrate", "--database-url", url])
        XCTAssertEqual(migrate.status, 0, migrate.output)
        XCTAssertTrue(migrate.output.contains("schema is current"), migrate.output)
        let verify = try run(["verify", "--database-url", url])
        XCTAssertEqual(verify.status, 0, verify.output)
        let connection = try PostgresConnection.connect(PostgresConfiguration(url: url))
        try connection.executeScript(
            """
            INSERT INTO regions (id, kind, vpc_id, vswitch_ids, security_group_id, state, is_primary)
            VALUES ('a', 'serverless', 'v', '{s}', 'g', 'active', true);
            INSERT INTO pools (region_id, id, compute_class, qos, cpu, memory_gib, instance_type, capacity, allocated, price_per_hour)
            VALUES ('a', 'p', 'general-purpose', '{default}', 2, 4, 't', 10, 3, 1);
            """)
        let broken = try run(["verify", "--database-url", url])
        XCTAssertEqual(broken.status, 1)
        XCTAssertTrue(broken.output.contains("a/p: allocated counter 3, live instances 0, ledger sum 0"), broken.output)
        try connection.executeScript(
            """
            UPDATE pools SET allocated = 0;
            INSERT INTO ledger (kind, region_id, pool_id, delta, actor) VALUES ('reserved', 'a', 'p', 1, 't'), ('released', 'a', 'p', -1, 't');
            """)
        // Ledger numbers are not counts: the inventory's events (migration 11) take numbers of the same sequence.
        let last: Int64 = try connection.query("SELECT max(seq) AS n FROM ledger")[0].decode("n")
        let checkpointed = try run(["verify", "--database-url", url])
        XCTAssertEqual(checkpointed.status, 0, checkpointed.output)
        XCTAssertTrue(checkpointed.output.contains("(2 ledger rows read; checkpoint now at ledger row \(last))"), checkpointed.output)
        let since = try run(["verify", "--database-url", url])
        XCTAssertTrue(since.output.contains("(0 ledger rows after checkpoint \(last) read; checkpoint not moved)"), since.output)
        let full = try run(["verify", "--full", "--database-url", url])
        XCTAssertTrue(full.output.contains("1 pools and 0 allocations agree with the ledger (2 ledger rows read"), full.output)
    }

    func testHelpListsTheCommandsAndEnvironment() throws {
        let help = try run(["--help"])
        XCTAssertEqual(help.status, 0)
        for word in [
            "serve (default)", "migrate", "verify", "GPUBROKER_DATABASE_URL", "regions", "inventory", "allocate", "allocations",
            "apply", "admin", "login", "GPUBROKER_URL", "GPUBROKER_TOKEN", "insufficient capacity",
        ] {
            XCTAssertTrue(help.output.contains(word), "help mentions \(word)")
        }
        let allocationsHelp = try run(["allocations", "--help"])
        for command in ["list", "get", "scale", "renew", "release", "events"] {
            XCTAssertTrue(allocationsHelp.output.contains("  \(command) "), "allocations --help lists \(command)")
        }
        for shell in ["bash", "zsh", "fish"] {
            let completion = try run(["--generate-completion-script", shell])
            XCTAssertEqual(completion.status, 0)
            XCTAssertTrue(completion.output.contains("allocations") && completion.output.contains("replicas"), shell)
        }
        let serveHelp = try run(["serve", "--help"])
        for option in [
            "--listen", "--database-url", "--admin-token", "--data-dir", "--reconcile-interval", "--usage-metrics-interval",
            "--demo", "--log-level", "--webhook-allow-private", "--webhook-senders", "--retain-history",
        ] {
            XCTAssertTrue(serveHelp.output.contains(option), "serve --help mentions \(option)")
        }
        let bad = try run(["serve", "--listen", "nonsense"])
        XCTAssertEqual(bad.status, 2, "a usage error")
        XCTAssertTrue(bad.output.contains("--listen must be host:port"), bad.output)
        for age in ["90 days", "30d", "12h"] {
            let badAge = try run(["serve", "--retain-history", age])
            XCTAssertEqual(badAge.status, 2, "a usage error")
            XCTAssertTrue(badAge.output.contains("--retain-history must be a whole number of days or hours, at least 31 days"), badAge.output)
        }
    }
}
