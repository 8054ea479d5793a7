import Foundation
import PostgresClient
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

public struct TestSetupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Databases on the cluster `scripts/with-postgres` started.
public enum TestDatabase {
    public static var serverURL: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["GPUBROKER_TEST_DATABASE_URL"], !url.isEmpty else {
                throw TestSetupError("GPUBROKER_TEST_DATABASE_URL is not set: run the tests under scripts/with-postgres")
            }
            return url
        }
    }

    /// The server's own database.
    public static var configuration: PostgresConfiguration {
        get throws { PostgresConfiguration(url: try serverURL) }
    }

    public static func connect() throws -> PostgresConnection {
        try PostgresConnection.connect(configuration)
    }

    /// The server URL with another database name.
    public static func url(for database: String) throws -> String {
        var components = URLComponents(string: try serverURL)!
        components.path = "/" + database
        return components.string!
    }

    private static let template = "gpubroker_template_\(ProcessInfo.processInfo.processIdentifier)"
    /// Whether the template is migrated: once per test process.
    private static let templateReady = Mutex(false)

    /// A new database brought to its schema by `migrate`, cloned from a template migrated
    /// once per test process. Returns its URL.
    public static func create(migrate: (PostgresConnection) throws -> Void) throws -> String {
        try templateReady.withLock { ready in
            guard !ready else { return }
            let admin = try connect()
            try admin.executeScript("DROP DATABASE IF EXISTS \(template)")
            try admin.executeScript("CREATE DATABASE \(template)")
            let connection = try PostgresConnection.connect(PostgresConfiguration(url: try url(for: template)))
            try migrate(connection)
            ready = true
        }
        let name = "gpubroker_test_\(UUID().uuidString.prefix(8).lowercased())"
        try connect().executeScript("CREATE DATABASE \(name) TEMPLATE \(template)")
        return try url(for: name)
    }
}

/// The test cluster itself, for tests that stop, restart or kill it.
public enum TestCluster {
    public static var environment: [String: String] { ProcessInfo.processInfo.environment }
    public static var dataDir: String? { environment["GPUBROKER_TEST_PG_DATA"] }
    public static var binDir: String? { environment["GPUBROKER_TEST_PG_BINDIR"] }
    public static var logPath: String {
        URL(fileURLWithPath: dataDir ?? "/tmp").deletingLastPathComponent().appendingPathComponent("server.log").path
    }

    /// `pg_ctl -D <data dir> arguments…`, as the server's user when the tests run as root.
    public static func pgCtl(_ arguments: [String]) throws -> (status: Int32, output: String) {
        guard let binDir, let dataDir else {
            throw TestSetupError("GPUBROKER_TEST_PG_DATA / GPUBROKER_TEST_PG_BINDIR are not set: run under scripts/with-postgres")
        }
        let command = [binDir + "/pg_ctl", "-D", dataDir] + arguments
        if let user = environment["GPUBROKER_TEST_PG_RUNAS"], !user.isEmpty {
            return try runTool("/usr/sbin/runuser", ["-u", user, "--"] + command)
        }
        return try runTool(command[0], Array(command.dropFirst()))
    }

    static var postmasterPID: Int32? {
        guard let dataDir, let text = try? String(contentsOfFile: dataDir + "/postmaster.pid", encoding: .utf8),
            let first = text.split(separator: "\n").first
        else { return nil }
        return Int32(first.trimmingCharacters(in: .whitespaces))
    }

    /// `kill -9` of the postmaster and, by pid, of its children: a whole-server crash.
    /// Killing only the postmaster lets its backends serve their open connections until
    /// they notice (measured: a few grants and a /readyz 200 up to ~0.5 s later).
    /// Returns how many children were killed.
    @discardableResult
    public static func killPostmaster() throws -> Int {
        guard let pid = postmasterPID else { throw TestSetupError("no postmaster.pid") }
        var children: [Int32] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let child = Int32(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 2, Int32(fields[1]) == pid { children.append(child) }
        }
        kill(pid, SIGKILL)
        for child in children { kill(child, SIGKILL) }
        return children.count
    }

    public static var isUp: Bool {
        (try? TestDatabase.connect()) != nil
    }

    /// Starts the cluster (retrying while the killed postmaster's children still hold
    /// shared memory) and waits until it accepts connections.
    public static func ensureUp(within seconds: Double = 60) throws {
        let deadline = Date().addingTimeInterval(seconds)
        var last = ""
        while Date() < deadline {
            if isUp { return }
            let result = try pgCtl(["-l", logPath, "-w", "-t", "20", "start"])
            last = result.output
            if isUp { return }
            usleep(300_000)
        }
        throw TestSetupError("the test cluster did not come back: \(last)")
    }
}

/// Runs a CLI tool to completion with posix_spawn and waitpid, output through a file:
/// Foundation's `Process` missed the exit of `runuser pg_ctl start` (a zombie left
/// unreaped, the test hung), the same trap Sources/gpubroker/Server/Subprocess.swift avoids.
public func runTool(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let outputPath = NSTemporaryDirectory() + "gpb-test-\(UUID().uuidString).out"
    defer { unlink(outputPath) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let command = [path] + arguments
    var argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, path, &actions, nil, &argv, environ)
    guard spawned == 0 else { throw TestSetupError("cannot run \(path): errno \(spawned)") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return (exitCode, output)
}
