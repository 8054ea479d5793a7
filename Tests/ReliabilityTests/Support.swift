import BrokerCore
import Foundation
import JSON
import PostgresClient
import Synchronization
import TestHarness
import TestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

// Everything here is blocking and meant for plain threads: the fault-injection tests
// are synchronous XCTest methods, so 64 client threads never wait on the 2-thread
// cooperative pool of a 2-core machine.

extension RawResponse {
    var json: JSONValue { (try? JSONValue.parse(body)) ?? .null }
}

/// The broker's requests over `RawClient`, one connection per request (`Connection: close`).
enum HTTP {
    /// Throws `TransportError` on any transport failure.
    static func request(
        port: Int, _ method: String, _ path: String, token: String? = nil, json: JSONValue? = nil,
        body: [UInt8]? = nil, headers: [String: String] = [:], timeoutSeconds: Int = 15
    ) throws -> RawResponse {
        var fields = headers.map { "\($0.key): \($0.value)" }
        if let token { fields.append("Authorization: Bearer \(token)") }
        if json != nil { fields.append("Content-Type: application/json") }
        return try RawClient.request(
            port: port, method, path, headers: fields, body: json.map { $0.encoded() } ?? body ?? [], close: true,
            timeoutSeconds: timeoutSeconds)
    }
}

/// A `gpubroker serve` child process.
final class BrokerProcess: @unchecked Sendable {
    static var binary: URL { Bundle.main.bundleURL.appendingPathComponent("gpubroker") }
    static let adminToken = "reliability-admin-token-0123456789"

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

func verify(_ databaseURL: String) throws -> (status: Int32, output: String) {
    try runTool(BrokerProcess.binary.path, ["verify", "--database-url", databaseURL])
}

/// Seeds through the admin API of a running broker.
enum Seed {
    static func region(port: Int, _ id: String, primary: Bool) throws {
        let reply = try HTTP.request(
            port: port, "POST", "/v1/admin/regions", token: BrokerProcess.adminToken, json: regionBody(id, primary: primary))
        guard reply.status == 201 else { throw TestSetupError("region \(id): \(reply.status) \(reply.text)") }
    }

    static func regionBody(_ id: String, primary: Bool, state: String = "active") -> JSONValue {
        .object([
            "id": .string(id), "kind": .string("serverless"), "primary": .bool(primary), "vpcId": .string("vpc-\(id)"),
            "vSwitchIds": .array([.string("vsw-\(id)-a"), .string("vsw-\(id)-b")]),
            "securityGroupId": .string("sg-\(id)"), "state": .string(state),
        ])
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

    /// The load tests' inventory: region r1 (primary) with one pool p1 of capacity
    /// 1,000,000, and a tenant. Returns the tenant's token.
    static func largePool(port: Int) throws -> String {
        try region(port: port, "r1", primary: true)
        try pool(port: port, region: "r1", "p1", capacity: 1_000_000)
        return try tenant(port: port)
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

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}

func ms(_ seconds: Double) -> String { String(format: "%.1f ms", seconds * 1000) }
func secs(_ seconds: Double) -> String { String(format: "%.2f s", seconds) }
