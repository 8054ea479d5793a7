import BrokerCore
import Foundation
import JSON
import TestHarness
import TestSupport
import XCTest
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

// The `gpubroker` binary run as a user runs it: children started with posix_spawn and
// reaped with waitpid (Foundation's Process can miss a child's exit when waited on from a
// Swift concurrency thread, see Sources/gpubroker/Server/Subprocess.swift).

enum Binary {
    static var url: URL { Bundle.main.bundleURL.appendingPathComponent("gpubroker") }

    /// A home of its own for the test process, so that no developer's config file is read.
    static let home: String = {
        let path = NSTemporaryDirectory() + "gpb-cli-home-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var json: JSONValue { (try? JSONValue.parse(stdout)) ?? .null }
    }

    /// The test process's environment without client settings, `HOME` set to `home`, then `overrides`.
    static func environment(_ overrides: [String: String]) -> [String] {
        var environment = ProcessInfo.processInfo.environment
        for name in ["GPUBROKER_URL", "GPUBROKER_TOKEN", "NO_COLOR", "XDG_CONFIG_HOME"] { environment[name] = nil }
        environment["HOME"] = home
        environment.merge(overrides) { $1 }
        return environment.map { "\($0.key)=\($0.value)" }
    }

    /// Starts the binary (or `executable`) with stdin, stdout and stderr opened on the given
    /// paths; `newGroup`: in a process group of its own, whose id is its pid.
    static func spawn(
        _ arguments: [String], environment overrides: [String: String], stdin: String, stdout: String, stderr: String,
        executable: String = url.path, newGroup: Bool = false
    ) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        if newGroup {
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin, O_RDWR, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        if stderr == stdout {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        }
        let command = [executable] + arguments
        var argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = environment(overrides).map { strdup($0) } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, &argv, &envp)
        guard spawned == 0 else { throw TestSetupError("cannot run \(executable): errno \(spawned)") }
        return pid
    }

    /// Runs the binary to completion.
    static func run(_ arguments: [String], environment: [String: String] = [:], stdin: String? = nil) throws -> Result {
        let base = NSTemporaryDirectory() + "gpb-cli-\(UUID().uuidString.prefix(8))"
        defer { for suffix in [".in", ".out", ".err"] { unlink(base + suffix) } }
        try Data((stdin ?? "").utf8).write(to: URL(fileURLWithPath: base + ".in"))
        let pid = try spawn(arguments, environment: environment, stdin: base + ".in", stdout: base + ".out", stderr: base + ".err")
        let status = waitForExit(pid)
        return Result(
            status: status, stdout: (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? "")
    }

    /// The exit status; nil while the child runs unless `block`.
    static func exitStatus(_ pid: pid_t, block: Bool) -> Int32? {
        var status: Int32 = 0
        var result: pid_t
        repeat { result = waitpid(pid, &status, block ? 0 : WNOHANG) } while result == -1 && errno == EINTR
        guard result == pid else { return nil }
        // WIFEXITED / WEXITSTATUS are macros: decode the wait status by hand.
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    @discardableResult
    static func waitForExit(_ pid: pid_t) -> Int32 { exitStatus(pid, block: true) ?? -1 }
}

/// The binary on a pseudo-terminal: what a person at a terminal sees.
final class TerminalSession {
    let pid: pid_t
    private let master: Int32
    private(set) var output = ""
    private(set) var status: Int32?

    init(_ arguments: [String], environment: [String: String]) throws {
        // posix_openpt, unlockpt and ptsname are not visible to Swift without _XOPEN_SOURCE:
        // the same through /dev/ptmx and the Linux ioctls they wrap (TIOCSPTLCK, TIOCGPTN;
        // _IOW/_IOR('T', 0x31/0x30, int), macros Swift cannot import).
        master = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        var unlock: Int32 = 0
        var number: UInt32 = 0
        guard master >= 0, ioctl(master, 0x4004_5431, &unlock) == 0, ioctl(master, 0x8004_5430, &number) == 0 else {
            throw TestSetupError("no pseudo-terminal: errno \(errno)")
        }
        let terminal = "/dev/pts/\(number)"
        _ = fcntl(master, F_SETFD, FD_CLOEXEC)
        _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
        pid = try Binary.spawn(arguments, environment: environment, stdin: terminal, stdout: terminal, stderr: terminal)
    }

    deinit {
        if status == nil {
            kill(pid, SIGKILL)
            Binary.waitForExit(pid)
        }
        close(master)
    }

    /// Reads what the program wrote so far; notes its exit.
    func poll() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(master, &buffer, buffer.count)
            guard count > 0 else { break }
            output += String(decoding: buffer[0..<count], as: UTF8.self)
        }
        if status == nil { status = Binary.exitStatus(pid, block: false) }
    }

    /// Polls until `condition` holds of the output so far, or `seconds` pass.
    func wait(seconds: Double, until condition: (String) -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            poll()
            if condition(output) { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// The exit status, waiting up to `seconds`; reads the last output after the exit.
    func exitStatus(within seconds: Double) async throws -> Int32? {
        _ = try await wait(seconds: seconds) { _ in self.status != nil }
        poll()
        return status
    }
}

/// `gpubroker` started without a subcommand (so it serves) on a fresh database, with
/// workers every 0.3 s, configured through the environment.
final class ServedBroker {
    let databaseURL: String
    let port: Int
    let adminToken = "cli-admin-token-0123456789abcdef0"
    let pid: pid_t
    let logPath = NSTemporaryDirectory() + "gpb-cli-broker-\(UUID().uuidString.prefix(8)).log"
    var url: String { "http://127.0.0.1:\(port)" }

    init(arguments: [String] = [], environment extra: [String: String] = [:]) throws {
        databaseURL = try TestDatabase.create()
        port = try freePort()
        pid = try Binary.spawn(
            arguments,
            environment: [
                "GPUBROKER_DATABASE_URL": databaseURL, "GPUBROKER_LISTEN": "127.0.0.1:\(port)",
                "GPUBROKER_ADMIN_TOKEN": adminToken, "GPUBROKER_RECONCILE_INTERVAL": "0.3", "GPUBROKER_LOG_LEVEL": "warning",
            ].merging(extra) { $1 },
            stdin: "/dev/null", stdout: logPath, stderr: logPath)
    }

    func waitReady(within seconds: Int = 15) async throws {
        for _ in 0..<(seconds * 10) {
            if (try? await api("GET", "/readyz"))?.status == 200 { return }
            if let status = Binary.exitStatus(pid, block: false) {
                throw TestSetupError("broker exited \(status): \((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestSetupError("broker not ready in \(seconds) s")
    }

    func stop() {
        kill(pid, SIGTERM)
        Binary.waitForExit(pid)
        unlink(logPath)
    }

    /// One request straight to the API (not through the CLI), for comparison.
    func api(_ method: String, _ path: String, token: String? = nil, json: JSONValue? = nil) async throws -> (status: Int, body: JSONValue) {
        var request = URLRequest(url: URL(string: url + path)!)
        request.httpMethod = method
        request.timeoutInterval = 10
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let json {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(json.encoded())
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, (try? JSONValue.parse(Array(data))) ?? .null)
    }
}

extension ServedBroker {
    /// Runs `gpubroker` against the broker; the token through GPUBROKER_TOKEN.
    func cli(_ arguments: [String], token: String?, environment: [String: String] = [:], stdin: String? = nil) throws -> Binary.Result {
        var settings = ["GPUBROKER_URL": url]
        if let token { settings["GPUBROKER_TOKEN"] = token }
        return try Binary.run(arguments, environment: settings.merging(environment) { $1 }, stdin: stdin)
    }

    /// Regions r1 (primary, T4 capacity 3) and r2 (on-premises, T4 capacity 2) and a tenant,
    /// all made with the admin commands; returns the tenant's token.
    func seed() async throws -> String {
        let admin = adminToken
        let steps: [[String]] = [
            ["admin", "regions", "create", "r1", "--vpc-id", "vpc-1", "--vswitch", "vsw-a,vsw-b", "--security-group", "sg-1", "--label", "geo=north"],
            ["admin", "regions", "create", "r2", "--kind", "on-premises", "--vpc-id", "vpc-2", "--vswitch", "vsw-c", "--security-group", "sg-2"],
            ["admin", "pools", "put", "r1", "t4", "--class", "gpu", "--series", "T4", "--gpu-memory", "16", "--gpus", "1", "--cpu", "4",
             "--memory", "15", "--instance-type", "ecs.t4", "--capacity", "3", "--price", "1.5"],
            ["admin", "pools", "put", "r2", "t4", "--class", "gpu", "--series", "T4", "--gpu-memory", "16", "--gpus", "1", "--cpu", "4",
             "--memory", "15", "--instance-type", "idc.t4", "--capacity", "2", "--price", "0"],
        ]
        for step in steps {
            let result = try cli(step + ["-o", "json"], token: admin)
            XCTAssertEqual(result.status, 0, "\(step): \(result.stderr)")
        }
        let tenant = try cli(["admin", "tenants", "create", "team", "--gpus", "16", "-o", "json"], token: admin)
        XCTAssertEqual(tenant.status, 0, tenant.stderr)
        return try XCTUnwrap(tenant.json["token"]?.stringValue, tenant.stdout)
    }
}
