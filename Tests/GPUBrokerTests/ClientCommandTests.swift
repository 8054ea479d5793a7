@testable import BrokerAPI
import BrokerCore
import Foundation
import JSON
import TestSupport
import XCTest

/// The client commands of the `gpubroker` binary against a live broker (the same binary
/// serving on a fresh PostgreSQL database): their output compared with the API's own answers.
final class ClientCommandTests: XCTestCase {
    var broker: ServedBroker!

    override func setUp() async throws {
        broker = try ServedBroker()
        try await broker.waitReady()
    }

    override func tearDown() async throws {
        broker?.stop()
    }

    func cli(_ arguments: [String], token: String?, environment: [String: String] = [:], stdin: String? = nil) throws -> Binary.Result {
        try broker.cli(arguments, token: token, environment: environment, stdin: stdin)
    }

    func seed() async throws -> String { try await broker.seed() }

    /// `admin pools put` reports the accelerator: vendor (inferred from the model unless
    /// given), partitions and links; a new model without `--vendor` is inferred again.
    func testPoolPutDescribesTheAccelerator() async throws {
        _ = try await seed()
        let admin = broker.adminToken
        let common = ["--class", "gpu", "--gpu-memory", "80", "--gpus", "8", "--cpu", "96", "--memory", "1024",
                      "--instance-type", "x", "--capacity", "1", "--price", "9", "-o", "json"]
        let h100 = try cli(["admin", "pools", "put", "r1", "big", "--series", "H100", "--partitions", "1g.10gb,3g.40gb",
                            "--interconnect", "nvlink", "--interconnect", "efa"] + common, token: admin)
        XCTAssertEqual(h100.status, 0, h100.stderr)
        XCTAssertEqual(h100.json["gpuVendor"], "nvidia")
        XCTAssertEqual(h100.json["gpuPartitions"], ["1g.10gb", "3g.40gb"])
        XCTAssertEqual(h100.json["gpuInterconnect"], ["nvlink", "efa"])
        let amd = try cli(["admin", "pools", "put", "r1", "big", "--series", "MI300X", "-o", "json"], token: admin)
        XCTAssertEqual(amd.json["gpuVendor"], "amd", amd.stderr)
        XCTAssertEqual(amd.json["gpuPartitions"], ["1g.10gb", "3g.40gb"], "flags not given keep their reported values")
        let said = try cli(["admin", "pools", "put", "r1", "big", "--series", "Z9", "--vendor", "intel", "-o", "json"], token: admin)
        XCTAssertEqual(said.json["gpuVendor"], "intel", said.stderr)
        let bad = try cli(["admin", "pools", "put", "r1", "big", "--vendor", "acme"], token: admin)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("gpuVendor"), bad.stderr)
    }

    func testJSONAndYAMLOutputAreTheAPIAnswers() async throws {
        let token = try await seed()
        let admin = broker.adminToken
        try await assertSame(["regions"], token: token, "/v1/regions")
        try await assertSame(["regions", "r1"], token: token, "/v1/regions/r1")
        try await assertSame(
            ["inventory", "--class", "gpu", "--series", "T4,A10", "--cpu", "4", "--memory", "15"], token: token,
            "/v1/inventory?computeClass=gpu&gpuSeries=T4,A10&cpu=4&memoryGiB=15")
        try await assertSame(["inventory", "--region", "r2"], token: token, "/v1/regions/r2/inventory")
        let everyRegion = try cli(["inventory", "-o", "json"], token: token)
        let r1 = try await broker.api("GET", "/v1/regions/r1/inventory", token: token).body
        let r2 = try await broker.api("GET", "/v1/regions/r2/inventory", token: token).body
        XCTAssertEqual(everyRegion.json, .object(["regions": .array([r1, r2])]), everyRegion.stdout)
        try await assertSame(["admin", "tenants", "list"], token: admin, "/v1/admin/tenants")

        let allocated = try cli(["allocate", "--class", "gpu", "--series", "T4", "--cpu", "4", "--memory", "15", "--replicas", "4", "-o", "json"], token: token)
        XCTAssertEqual(allocated.status, 0, allocated.stderr)
        XCTAssertEqual(allocated.json["status"], .string("active"))
        XCTAssertEqual(allocated.json["instances"]?.array.compactMap { $0["region"]?.string }, ["r1", "r1", "r1", "r2"])
        let id = try XCTUnwrap(allocated.json["id"]?.string)
        try await assertSame(["allocations", "get", id], token: token, "/v1/allocations/\(id)")
        try await assertSame(["allocations", "list"], token: token, "/v1/allocations")

        let scaled = try cli(["allocations", "scale", id, "--replicas", "2", "-o", "json"], token: token)
        XCTAssertEqual(scaled.json["placedReplicas"], .number(2), scaled.stderr)
        let afterScale = try await broker.api("GET", "/v1/allocations/\(id)", token: token).body
        XCTAssertEqual(scaled.json, afterScale)
        let renewed = try cli(["allocations", "renew", id, "--lease", "900", "-o", "json"], token: token)
        XCTAssertEqual(renewed.json["leaseSeconds"], .number(900), renewed.stderr)
        let afterRenew = try await broker.api("GET", "/v1/allocations/\(id)", token: token).body
        XCTAssertEqual(renewed.json, afterRenew)
        try await assertSame(["allocations", "events", id], token: token, "/v1/allocations/\(id)/events")

        let yaml = try cli(["allocations", "get", id, "-o", "yaml"], token: token)
        XCTAssertEqual(yaml.status, 0, yaml.stderr)
        let asYAML = try await broker.api("GET", "/v1/allocations/\(id)", token: token).body
        XCTAssertEqual(try YAMLBodies.parse(Array(yaml.stdout.utf8)), asYAML)

        let released = try cli(["allocations", "release", id, "-o", "json"], token: token)
        XCTAssertEqual(released.json["status"], .string("released"), released.stderr)
        let afterRelease = try await broker.api("GET", "/v1/allocations/\(id)", token: token).body
        XCTAssertEqual(released.json, afterRelease)

        // --policy places with the tenant's named policy: r2 takes at most one, then the rest.
        let policy: JSONValue = .object([
            "units": .array([.object(["regions": .array([.string("r2")]), "max": .number(1)]), .object(["regions": .array([.string("*")])])]),
        ])
        let put = try await broker.api("PUT", "/v1/policies/onprem-first", token: token, json: policy)
        XCTAssertEqual(put.status, 201)
        let placed = try cli(
            ["allocate", "--class", "gpu", "--series", "T4", "--cpu", "4", "--memory", "15", "--replicas", "3", "--policy", "onprem-first", "-o", "json"],
            token: token)
        XCTAssertEqual(placed.status, 0, placed.stderr)
        XCTAssertEqual(placed.json["instances"]?.array.map { "\($0["region"]?.string ?? "")/\($0["unit"]?.int ?? -1)" }, ["r2/0", "r1/1", "r1/1"])
        XCTAssertEqual(placed.json["request"]?["placement"], put.body["policy"])
        let unknownPolicy = try cli(
            ["allocate", "--class", "gpu", "--series", "T4", "--cpu", "4", "--memory", "15", "--policy", "nope"], token: token)
        XCTAssertEqual(unknownPolicy.status, 1)
        XCTAssertTrue(unknownPolicy.stderr.hasPrefix("error: 404 not_found: "), unknownPolicy.stderr)

        // update reads the region first: only the fields given change.
        let cordoned = try cli(["admin", "regions", "update", "r1", "--state", "cordoned", "--label", "tier=gold", "-o", "json"], token: admin)
        XCTAssertEqual(cordoned.status, 0, cordoned.stderr)
        let region = try await broker.api("GET", "/v1/regions/r1", token: admin).body
        XCTAssertEqual(cordoned.json, region)
        XCTAssertEqual(region["state"], .string("cordoned"))
        XCTAssertEqual(region["vSwitchIds"], .array([.string("vsw-a"), .string("vsw-b")]))
        XCTAssertEqual(region["labels"], .object(["geo": .string("north"), "tier": .string("gold")]))
        XCTAssertEqual(region["primary"], .bool(true))
    }

    /// `gpubroker ARGS -o json` prints exactly what `GET path` answers.
    func assertSame(_ arguments: [String], token: String, _ path: String, line: UInt = #line) async throws {
        let result = try cli(arguments + ["-o", "json"], token: token)
        XCTAssertEqual(result.status, 0, result.stderr, line: line)
        let api = try await broker.api("GET", path, token: token)
        XCTAssertEqual(api.status, 200, line: line)
        XCTAssertEqual(result.json, api.body, "\(arguments) printed:\n\(result.stdout)", line: line)
    }

    func testTablesErrorsAndExitCodes() async throws {
        let token = try await seed()
        let regions = try cli(["regions", "-o", "table"], token: token)
        XCTAssertEqual(regions.stdout, """
            ID   KIND          PRIMARY   STATE    VPC     VSWITCHES     LABELS
            r1   serverless    yes       active   vpc-1   vsw-a,vsw-b   geo=north
            r2   on-premises   no        active   vpc-2   vsw-c         -

            """)
        let shape = try cli(["inventory", "--class", "gpu", "--series", "T4", "--cpu", "4", "--memory", "15", "-o", "table"], token: token)
        XCTAssertEqual(shape.stdout, """
            REGION   AVAILABLE REPLICAS   BEST POOL   PRICE/H
            r1       3                    t4          1.5
            r2       2                    t4          0

            """)

        let allocated = try cli(["allocate", "--class", "gpu", "--series", "T4", "--cpu", "4", "--memory", "15", "--replicas", "4", "-o", "json"], token: token)
        let id = try XCTUnwrap(allocated.json["id"]?.string, allocated.stderr)
        let list = try cli(["allocations", "list", "-o", "table"], token: token)
        let lines = list.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2, list.stdout)
        XCTAssertEqual(lines[0].split(separator: " "), ["ID", "STATUS", "PLACED", "SHAPE", "REGIONS", "LEASE", "AGE"])
        XCTAssertTrue(lines[1].hasPrefix("\(id)   active   4/4      gpu T4×1, 4 CPU, 15 GiB   r1=3,r2=1   in 4m"), lines[1])
        XCTAssertFalse(list.stdout.contains("\u{1B}"), "no colour off a terminal")

        // 3: not enough capacity; one line on stderr with the decisions and the request id.
        let refused = try cli(["allocate", "--class", "gpu", "--series", "T4", "--cpu", "4", "--memory", "15", "--replicas", "5"], token: token)
        XCTAssertEqual(refused.status, 3, refused.stderr)
        XCTAssertEqual(refused.stdout, "")
        XCTAssertEqual(refused.stderr.filter { $0 == "\n" }.count, 1, refused.stderr)
        XCTAssertTrue(refused.stderr.hasPrefix("error: 409 insufficient_capacity: "), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("r1: T4: 0 of 3 available"), refused.stderr)
        XCTAssertNotNil(refused.stderr.range(of: #"\[request [0-9a-f-]{36}\]\n$"#, options: .regularExpression), refused.stderr)

        // 1: errors of the API and of the network.
        let missing = try cli(["allocations", "get", "00000000-0000-4000-8000-000000000000"], token: token)
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.hasPrefix("error: 404 not_found: "), missing.stderr)
        XCTAssertTrue(missing.stderr.contains("[request "), missing.stderr)
        let unauthorized = try cli(["regions"], token: "gpb_wrong")
        XCTAssertEqual(unauthorized.status, 1)
        XCTAssertTrue(unauthorized.stderr.hasPrefix("error: 401 unauthorized: "), unauthorized.stderr)
        let unreachable = try cli(["regions", "--server", "http://127.0.0.1:9"], token: token)
        XCTAssertEqual(unreachable.status, 1)
        XCTAssertTrue(unreachable.stderr.contains("cannot reach http://127.0.0.1:9"), unreachable.stderr)

        // 2: usage.
        for arguments in [
            ["allocate", "--class", "gpu", "--cpu", "4"],
            ["allocate", "--class", "gpu", "--cpu", "4", "--memory", "15", "--region", "r1", "--policy", "p"],
            ["allocations", "frobnicate"], ["inventory", "--series", "T4"],
        ] {
            let usage = try cli(arguments, token: token)
            XCTAssertEqual(usage.status, 2, "\(arguments): \(usage.stderr)")
            XCTAssertFalse(usage.stderr.isEmpty)
        }

        // 4: still pending when --timeout runs out; the allocation stays queued.
        let started = Date()
        let timedOut = try cli(
            ["allocate", "--class", "gpu", "--series", "T4", "--cpu", "4", "--memory", "15", "--replicas", "3", "--queue", "--wait",
             "--timeout", "1", "-o", "json"], token: token)
        XCTAssertEqual(timedOut.status, 4, timedOut.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
        XCTAssertTrue(timedOut.stderr.contains("timed out after 1s"), timedOut.stderr)
        let pendingId = try XCTUnwrap(timedOut.json["id"]?.string, timedOut.stdout)
        let pending = try await broker.api("GET", "/v1/allocations/\(pendingId)", token: token).body
        XCTAssertEqual(pending["status"], .string("pending"))

        // 3 again: a queued request whose deadline passes is unschedulable.
        let unschedulable = try cli(
            ["allocate", "--class", "gpu", "--series", "T4", "--cpu", "4", "--memory", "15", "--replicas", "3", "--queue",
             "--queue-timeout", "1", "--wait", "--timeout", "10", "-o", "json"], token: token)
        XCTAssertEqual(unschedulable.status, 3, unschedulable.stderr)
        XCTAssertEqual(unschedulable.json["status"], .string("unschedulable"))
        XCTAssertTrue(unschedulable.stderr.contains("is unschedulable"), unschedulable.stderr)
    }

    func testConfigFileMustBePrivateAndFlagsWin() async throws {
        let token = try await seed()
        let home = NSTemporaryDirectory() + "gpb-cli-config-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: home) }
        let path = home + "/.config/gpubroker/config"
        try FileManager.default.createDirectory(atPath: home + "/.config/gpubroker", withIntermediateDirectories: true)
        try "# test\nserver = \(broker.url)\ntoken = \(token)\n".write(toFile: path, atomically: true, encoding: .utf8)
        let environment = ["HOME": home]

        chmod(path, 0o644)
        let exposed = try Binary.run(["regions", "-o", "json"], environment: environment)
        XCTAssertEqual(exposed.status, 1)
        XCTAssertEqual(exposed.stderr, "error: \(path) is mode 644 but holds a token: only its owner may read it (chmod 600 \(path))\n")
        chmod(path, 0o600)
        let fromFile = try Binary.run(["regions", "-o", "json"], environment: environment)
        XCTAssertEqual(fromFile.status, 0, fromFile.stderr)
        XCTAssertEqual(fromFile.json["regions"]?.array.count, 2)

        // The environment wins over the file, a flag over the environment.
        let badEnvironment = try Binary.run(["regions"], environment: environment.merging(["GPUBROKER_TOKEN": "gpb_bad"]) { $1 })
        XCTAssertEqual(badEnvironment.status, 1)
        XCTAssertTrue(badEnvironment.stderr.contains("401 unauthorized"), badEnvironment.stderr)
        let flagWins = try Binary.run(["regions", "--token", token], environment: environment.merging(["GPUBROKER_TOKEN": "gpb_bad"]) { $1 })
        XCTAssertEqual(flagWins.status, 0, flagWins.stderr)
        let deadServer = try Binary.run(["regions"], environment: environment.merging(["GPUBROKER_URL": "http://127.0.0.1:9"]) { $1 })
        XCTAssertEqual(deadServer.status, 1)

        // login checks the token, then writes the file 0600.
        try FileManager.default.removeItem(atPath: home + "/.config")
        let refused = try Binary.run(["login", "--server", broker.url, "--token", "gpb_bad"], environment: environment)
        XCTAssertEqual(refused.status, 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "a refused token is not kept")
        let login = try Binary.run(["login", "--server", broker.url], environment: environment, stdin: token + "\n")
        XCTAssertEqual(login.status, 0, login.stderr)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber
        XCTAssertEqual(mode?.intValue, 0o600)
        let afterLogin = try Binary.run(["regions", "-o", "json"], environment: environment)
        XCTAssertEqual(afterLogin.status, 0, afterLogin.stderr)
        let noToken = try Binary.run(["regions"], environment: ["HOME": home + "/nowhere"])
        XCTAssertEqual(noToken.status, 1)
        XCTAssertTrue(noToken.stderr.contains("no token"), noToken.stderr)
    }

    func testOnATerminalTablesAreColouredAndWaitShowsProgress() async throws {
        let token = try await seed()
        let environment = ["GPUBROKER_URL": broker.url, "GPUBROKER_TOKEN": token, "TERM": "xterm"]
        let regions = try TerminalSession(["regions"], environment: environment)
        let regionsStatus = try await regions.exitStatus(within: 10)
        XCTAssertEqual(regionsStatus, 0, regions.output)
        XCTAssertTrue(regions.output.contains("\u{1B}[1mID\u{1B}[0m"), "a bold header: \(regions.output.debugDescription)")
        XCTAssertTrue(regions.output.contains("\u{1B}[32mactive\u{1B}[0m"), regions.output.debugDescription)
        // Off a terminal the same command prints JSON.
        let piped = try cli(["regions"], token: token)
        let regionsAnswer = try await broker.api("GET", "/v1/regions", token: token).body
        XCTAssertEqual(piped.json, regionsAnswer)

        let wait = try TerminalSession(
            ["allocate", "--class", "gpu", "--series", "T4", "--cpu", "4", "--memory", "15", "--replicas", "8", "--queue", "--wait"],
            environment: environment)
        let progressShown = try await wait.wait(seconds: 10) { $0.contains("\r\u{1B}[2K") && $0.contains("0/8 placed") }
        XCTAssertTrue(progressShown, wait.output.debugDescription)
        XCTAssertTrue(wait.output.contains("\u{1B}[33mpending\u{1B}[0m"), wait.output.debugDescription)
        XCTAssertNil(wait.status, "still waiting while nothing fits")
        let report = try await broker.api(
            "PUT", "/v1/admin/regions/r1/pools/t4", token: broker.adminToken,
            json: .object([
                "computeClass": .string("gpu"), "gpuSeries": .string("T4"), "gpuMemoryGiB": .number(16), "gpusPerInstance": .number(1),
                "cpu": .number(4), "memoryGiB": .number(15), "instanceType": .string("ecs.t4"), "capacity": .number(10),
                "pricePerHour": .number(1.5),
            ]))
        XCTAssertEqual(report.status, 200)
        let started = Date()
        let waitStatus = try await wait.exitStatus(within: 10)
        XCTAssertEqual(waitStatus, 0, wait.output.debugDescription)
        print("--wait returned \(String(format: "%.2f", Date().timeIntervalSince(started))) s after the capacity report")
        XCTAssertNotNil(wait.output.range(of: "Status: +\u{1B}\\[32mactive", options: .regularExpression), wait.output.debugDescription)
        XCTAssertNotNil(wait.output.range(of: "Placed: +8/8", options: .regularExpression), wait.output.debugDescription)
    }

    func testApplyWritesOneManifestPerRegion() async throws {
        let token = try await seed()
        let deployment = """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web}
            spec:
              replicas: 4
              selector: {matchLabels: {app: web}}
              template:
                metadata:
                  labels: {app: web, alibabacloud.com/compute-class: gpu, alibabacloud.com/gpu-model-series: T4}
                spec:
                  containers:
                    - name: server
                      image: nginx
                      resources: {requests: {cpu: 4, memory: 15Gi, nvidia.com/gpu: 1}}
            """
        let file = NSTemporaryDirectory() + "gpb-cli-\(UUID().uuidString.prefix(8)).yaml"
        try deployment.write(toFile: file, atomically: true, encoding: .utf8)
        defer { unlink(file) }
        let applied = try cli(["apply", "-f", file], token: token)
        XCTAssertEqual(applied.status, 0, applied.stderr)
        let documents = applied.stdout.components(separatedBy: "---\n").dropFirst().map { try? YAMLBodies.parse(Array($0.utf8)) }
        XCTAssertEqual(documents.map { $0?["metadata"]?["name"] }, [.string("web-r1"), .string("web-r2")], applied.stdout)
        XCTAssertEqual(documents.map { $0?["spec"]?["replicas"] }, [.number(3), .number(1)])
        XCTAssertEqual(
            documents.map { $0?["spec"]?["template"]?["spec"]?["nodeSelector"]?["topology.kubernetes.io/region"] },
            [.string("r1"), .string("r2")])
        XCTAssertNotNil(applied.stderr.range(of: #"^allocation [0-9a-f-]{36} active: 4/4 replicas \(r1=3,r2=1\)\n$"#, options: .regularExpression), applied.stderr)

        // From stdin, into a directory, with the whole answer as JSON.
        let first = try await newestAllocation(token)
        _ = try await broker.api("DELETE", "/v1/allocations/\(try XCTUnwrap(first))", token: token)
        let directory = NSTemporaryDirectory() + "gpb-cli-manifests-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let written = try cli(["apply", "-f", "-", "--output-dir", directory, "-o", "json"], token: token, stdin: deployment)
        XCTAssertEqual(written.status, 0, written.stderr)
        XCTAssertEqual(written.json["allocation"]?["status"], .string("active"))
        for (index, region) in ["r1", "r2"].enumerated() {
            let text = try String(contentsOfFile: "\(directory)/web-\(region).yaml", encoding: .utf8)
            XCTAssertEqual(try YAMLBodies.parse(Array(text.utf8)), written.json["manifests"]?[index])
        }
    }

    /// A file holding only a ResourcePolicy is stored as the tenant's named policy, which then
    /// places a plain request whose labels it selects: the on-premises region first.
    func testApplyOfAPolicyFileStoresIt() async throws {
        let token = try await seed()
        let policy = """
            apiVersion: scheduling.alibabacloud.com/v1alpha1
            kind: ResourcePolicy
            metadata: {name: idc-first}
            spec:
              selector: {app: web}
              units:
              - {resource: idc, max: 1}
              - {resource: eci, podAnnotations: {a: b}}
            """
        let stored = try cli(["apply", "-f", "-", "-o", "table"], token: token, stdin: policy)
        XCTAssertEqual(stored.status, 0, stored.stderr)
        XCTAssertEqual(stored.stdout, """
            stored ResourcePolicy as policy idc-first
            warning: ResourcePolicy idc-first: spec.units[1].podAnnotations is not implemented: ignored

            """)
        let allocated = try cli(
            ["allocate", "--class", "gpu", "--series", "T4", "--gpus", "1", "--cpu", "4", "--memory", "15", "--replicas", "2",
             "--label", "app=web", "-o", "json"], token: token)
        XCTAssertEqual(allocated.status, 0, allocated.stderr)
        XCTAssertEqual(allocated.json["instances"]?.arrayValue?.map { $0["region"] }, [.string("r2"), .string("r1")])
    }

    /// Reads wait out a tenant's rate limit (429 with Retry-After) instead of failing.
    func testReadsWaitOutTheRateLimit() async throws {
        broker.stop()
        broker = try ServedBroker(environment: ["GPUBROKER_TENANT_RATE_LIMIT": "1", "GPUBROKER_TENANT_RATE_BURST": "1"])
        try await broker.waitReady()
        let token = try await seed()
        let first = try cli(["regions", "-o", "json"], token: token)
        let started = Date()
        let second = try cli(["regions", "-o", "json"], token: token)
        XCTAssertEqual([first.status, second.status], [0, 0], first.stderr + second.stderr)
        XCTAssertEqual(second.json["regions"]?.array.count, 2)
        XCTAssertGreaterThan(Date().timeIntervalSince(started), 0.3, "the second waited for the bucket")
        // A write without an idempotency key is not sent twice: the 429 is the answer.
        let refused = try cli(["allocations", "scale", "00000000-0000-4000-8000-000000000000", "--replicas", "2"], token: token)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.hasPrefix("error: 429 rate_limited: "), refused.stderr)
    }

    func newestAllocation(_ token: String) async throws -> String? {
        try await broker.api("GET", "/v1/allocations", token: token).body["allocations"]?.array.first?["id"]?.string
    }
}
