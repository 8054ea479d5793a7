import BrokerCore
import Foundation
import PostgresClient
import Synchronization
import TestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

// Everything here is blocking and meant for plain threads: the fault-injection tests
// are synchronous XCTest methods, so 64 client threads never wait on the 2-thread
// cooperative pool of a 2-core machine.

/// One HTTP answer.
struct Reply: Sendable {
    var status: Int
    var headers: [String: String]  // lowercased names
    var body: [UInt8]
    var json: JSONValue { (try? JSONValue.parse(body)) ?? .null }
    var text: String { String(decoding: body, as: UTF8.self) }
}

struct TransportError: Error, CustomStringConvertible {
    var description: String
    /// Bytes of a response received before the failure: non-zero means a half-written answer.
    var received: Int = 0
}

/// A blocking HTTP/1.1 client over a POSIX socket, one connection per request.
enum HTTP {
    static func connect(port: Int, timeoutSeconds: Int, receiveBuffer: Int32? = nil) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TransportError(description: "socket: errno \(errno)") }
        if var size = receiveBuffer { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if result != 0 {
            let code = errno
            Glibc.close(fd)
            throw TransportError(description: "connect: errno \(code)")
        }
        return fd
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { throw TransportError(description: "send: errno \(errno)") }
            offset += written
        }
    }

    /// One request with `Connection: close`; reads to EOF. Throws on any transport failure.
    static func request(
        port: Int, _ method: String, _ path: String, token: String? = nil, json: JSONValue? = nil,
        body: [UInt8]? = nil, headers: [String: String] = [:], timeoutSeconds: Int = 15
    ) throws -> Reply {
        let fd = try connect(port: port, timeoutSeconds: timeoutSeconds)
        defer { Glibc.close(fd) }
        let payload = json.map { $0.encoded() } ?? body ?? []
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        if json != nil { head += "Content-Type: application/json\r\n" }
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if !payload.isEmpty || method == "POST" || method == "PUT" || method == "PATCH" {
            head += "Content-Length: \(payload.count)\r\n"
        }
        head += "\r\n"
        try sendAll(fd, Array(head.utf8) + payload)
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                throw TransportError(description: "recv: errno \(errno) after \(buffer.count) bytes", received: buffer.count)
            }
            if count == 0 { break }
            buffer.append(contentsOf: chunk[0..<count])
        }
        return try parse(buffer)
    }

    static func parse(_ buffer: [UInt8]) throws -> Reply {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard buffer.count >= 4,
            let end = (0...(buffer.count - 4)).first(where: { Array(buffer[$0..<($0 + 4)]) == separator })
        else {
            throw TransportError(description: "no complete response header (\(buffer.count) bytes)", received: buffer.count)
        }
        let lines = String(decoding: buffer[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let parts = lines[0].split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else {
            throw TransportError(description: "bad status line \(lines[0])")
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(buffer[(end + 4)...])
        if let length = headers["content-length"].flatMap(Int.init) {
            guard body.count >= length else { throw TransportError(description: "truncated body", received: buffer.count) }
            body = Array(body.prefix(length))
        }
        return Reply(status: status, headers: headers, body: body)
    }
}

/// A `gpubroker serve` child process.
final class BrokerProcess: @unchecked Sendable {
    static var binary: URL { Bundle.main.bundleURL.appendingPathComponent("gpubroker") }
    static let adminToken = "reliability-admin-token"

    let process = Process()
    let port: Int
    let logPath: String

    init(databaseURL: String, reconcileInterval: Double = 5, extra: [String] = []) throws {
        port = try freePort()
        logPath = NSTemporaryDirectory() + "gpb-rel-\(UUID().uuidString.prefix(8)).log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = Self.binary
        process.arguments = [
            "serve", "--database-url", databaseURL, "--admin-token", Self.adminToken,
            "--listen", "127.0.0.1:\(port)", "--log-level", "warning",
            "--reconcile-interval", "\(reconcileInterval)",
        ] + extra
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    /// Seconds until `/readyz` answered 200.
    @discardableResult
    func waitReady(within seconds: Double = 30) throws -> Double {
        let started = Date()
        while Date().timeIntervalSince(started) < seconds {
            if (try? HTTP.request(port: port, "GET", "/readyz", timeoutSeconds: 2))?.status == 200 {
                return Date().timeIntervalSince(started)
            }
            guard process.isRunning else { throw TestSetupError("broker exited: \(log)") }
            usleep(100_000)
        }
        throw TestSetupError("broker on \(port) not ready within \(seconds) s: \(log)")
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func kill9() {
        kill(pid, SIGKILL)
        process.waitUntilExit()
    }

    func stop() {
        if process.isRunning {
            kill(pid, SIGTERM)
            let deadline = Date().addingTimeInterval(15)
            while process.isRunning && Date() < deadline { usleep(50_000) }
            if process.isRunning { kill(pid, SIGKILL) }
        }
        process.waitUntilExit()
    }

    /// Resident set size in KiB from /proc.
    var rssKiB: Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
        }
        return 0
    }
}

func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Runs a CLI tool to completion with posix_spawn and waitpid, output through a file:
/// Foundation's `Process` missed the exit of `runuser pg_ctl start` (a zombie left
/// unreaped, the test hung), the same trap Sources/gpubroker/Subprocess.swift avoids.
func runTool(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let outputPath = NSTemporaryDirectory() + "gpb-rel-\(UUID().uuidString).out"
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

func verify(_ databaseURL: String) throws -> (status: Int32, output: String) {
    try runTool(BrokerProcess.binary.path, ["verify", "--database-url", databaseURL])
}

/// Seeds through the admin API of a running broker.
enum Seed {
    static func region(port: Int, _ id: String, primary: Bool) throws {
        let body: JSONValue = .object([
            "id": .string(id), "kind": .string("serverless"), "primary": .bool(primary), "vpcId": .string("vpc-\(id)"),
            "vSwitchIds": .array([.string("vsw-\(id)-a"), .string("vsw-\(id)-b")]),
            "securityGroupId": .string("sg-\(id)"), "state": .string("active"),
        ])
        let reply = try HTTP.request(port: port, "POST", "/v1/admin/regions", token: BrokerProcess.adminToken, json: body)
        guard reply.status == 201 else { throw TestSetupError("region \(id): \(reply.status) \(reply.text)") }
    }

    static func pool(port: Int, region: String, _ id: String, capacity: Int, price: Double = 1, deferSeconds: Int = 600) throws {
        let body: JSONValue = .object([
            "computeClass": .string("general-purpose"), "cpu": .number(4), "memoryGiB": .number(16),
            "instanceType": .string("ecs.\(id)"), "capacity": .number(Double(capacity)), "pricePerHour": .number(price),
            "deferScaleInSeconds": .number(Double(deferSeconds)),
        ])
        let reply = try HTTP.request(
            port: port, "PUT", "/v1/admin/regions/\(region)/pools/\(id)", token: BrokerProcess.adminToken, json: body)
        guard reply.status == 201 || reply.status == 200 else {
            throw TestSetupError("pool \(region)/\(id): \(reply.status) \(reply.text)")
        }
    }

    static func tenant(port: Int, _ name: String = "load") throws -> String {
        let reply = try HTTP.request(
            port: port, "POST", "/v1/admin/tenants", token: BrokerProcess.adminToken, json: .object(["name": .string(name)]))
        guard reply.status == 201, let token = reply.json["token"]?.stringValue else {
            throw TestSetupError("tenant: \(reply.status) \(reply.text)")
        }
        return token
    }

    /// A small general-purpose allocation request, labelled with its key.
    static func allocation(replicas: Int = 1, key: String, allOrNothing: Bool = true) -> JSONValue {
        .object([
            "computeClass": .string("general-purpose"), "cpu": .number(1), "memoryGiB": .number(1),
            "replicas": .number(Double(replicas)), "allOrNothing": .bool(allOrNothing),
            "labels": .object(["key": .string(key)]),
        ])
    }
}

/// Thread-safe collection of anything.
final class Collector<T: Sendable>: Sendable {
    private let storage = Mutex<[T]>([])
    func append(_ item: T) { storage.withLock { $0.append(item) } }
    var items: [T] { storage.withLock { $0 } }
}

final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .sequentiallyConsistent) }
    var isSet: Bool { value.load(ordering: .sequentiallyConsistent) }
}

final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    @discardableResult func increment(by amount: Int = 1) -> Int { value.add(amount, ordering: .relaxed).newValue }
    var count: Int { value.load(ordering: .relaxed) }
}

/// Starts `count` threads running `body(index)` and returns a function that joins them.
func startThreads(_ count: Int, stackKiB: Int = 512, _ body: @escaping @Sendable (Int) -> Void) -> () -> Void {
    let group = DispatchGroup()
    for index in 0..<count {
        group.enter()
        let thread = Thread {
            body(index)
            group.leave()
        }
        thread.stackSize = stackKiB * 1024
        thread.start()
    }
    return { group.wait() }
}

/// A direct database connection for assertions.
func database(_ url: String) throws -> PostgresConnection {
    try PostgresConnection.connect(PostgresConfiguration(url: url))
}

/// The invariants sampled during a run, in one statement (one snapshot): pools over
/// capacity and pools whose counter, live instances and ledger sum disagree.
func sampleInvariants(_ connection: PostgresConnection) throws -> (overbooked: Int, disagreeing: Int) {
    let row = try connection.query(
        """
        WITH live AS (SELECT region_id, pool_id, count(*)::int AS n FROM instances
                      WHERE state IN ('running', 'idle') GROUP BY 1, 2),
             sums AS (SELECT region_id, pool_id, sum(delta)::int AS n FROM ledger
                      WHERE pool_id IS NOT NULL GROUP BY 1, 2)
        SELECT (SELECT count(*)::int FROM pools WHERE allocated > capacity) AS overbooked,
               (SELECT count(*)::int FROM pools p
                  LEFT JOIN live l ON l.region_id = p.region_id AND l.pool_id = p.id
                  LEFT JOIN sums s ON s.region_id = p.region_id AND s.pool_id = p.id
                 WHERE p.allocated <> coalesce(l.n, 0) OR p.allocated <> coalesce(s.n, 0)) AS disagreeing
        """)[0]
    return (try row.decode("overbooked"), try row.decode("disagreeing"))
}

/// The test cluster of `scripts/with-postgres`, for tests that kill it.
enum TestCluster {
    static var environment: [String: String] { ProcessInfo.processInfo.environment }
    static var dataDir: String? { environment["GPUBROKER_TEST_PG_DATA"] }
    static var binDir: String? { environment["GPUBROKER_TEST_PG_BINDIR"] }

    static func pgCtl(_ arguments: [String]) throws -> (status: Int32, output: String) {
        guard let binDir else { throw TestSetupError("GPUBROKER_TEST_PG_BINDIR is not set") }
        if let user = environment["GPUBROKER_TEST_PG_RUNAS"], !user.isEmpty {
            return try runTool("/usr/sbin/runuser", ["-u", user, "--", binDir + "/pg_ctl"] + arguments)
        }
        return try runTool(binDir + "/pg_ctl", arguments)
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
    static func killPostmaster() throws -> Int {
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

    static var isUp: Bool {
        (try? PostgresConnection.connect(PostgresConfiguration(url: TestDatabase.serverURL))) != nil
    }

    /// Starts the cluster (retrying while the killed postmaster's children still hold
    /// shared memory) and waits until it accepts connections.
    static func ensureUp(within seconds: Double = 60) throws {
        guard let dataDir else { throw TestSetupError("GPUBROKER_TEST_PG_DATA is not set") }
        let deadline = Date().addingTimeInterval(seconds)
        var last = ""
        while Date() < deadline {
            if isUp { return }
            let result = try pgCtl(["-D", dataDir, "-l", dataDir + "/../server.log", "-w", "-t", "20", "start"])
            last = result.output
            if isUp { return }
            usleep(300_000)
        }
        throw TestSetupError("the test cluster did not come back: \(last)")
    }
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}

func ms(_ seconds: Double) -> String { String(format: "%.1f ms", seconds * 1000) }
func secs(_ seconds: Double) -> String { String(format: "%.2f s", seconds) }
