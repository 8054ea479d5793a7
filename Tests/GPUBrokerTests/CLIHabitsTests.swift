import Foundation
import JSON
import TestHarness
import XCTest

/// What kubectl users reach for first, against a live broker: version, whoami, logout, a
/// typo named as such, `apply` idempotent per file, the console's short ids, policies and
/// webhooks commands.
final class CLIHabitsTests: XCTestCase {
    var broker: ServedBroker!
    let work = "/tmp/gpb-habits-\(UUID().uuidString.prefix(8))"

    override func setUp() async throws {
        broker = try ServedBroker(environment: ["GPUBROKER_WEBHOOK_ALLOW_PRIVATE": "1"])
        try await broker.waitReady()
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    }

    override func tearDown() async throws {
        broker?.stop()
        try? FileManager.default.removeItem(atPath: work)
    }

    static var openAPIVersion: String {
        get throws {
            let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("openapi/openapi.yaml").path
            let text = try String(contentsOfFile: path, encoding: .utf8)
            let line = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("  version: ") })
            return String(line.dropFirst("  version: ".count))
        }
    }

    func testVersionIsTheDocumentsAndATypoIsNamedNotAServeUsageError() throws {
        let version = try Self.openAPIVersion
        for arguments in [["--version"], ["version"]] {
            let result = try Binary.run(arguments)
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertTrue(result.stdout.contains(version), "\(arguments): \(result.stdout)")
        }
        let typo = try Binary.run(["alocate", "--replicas", "2"])
        XCTAssertEqual(typo.status, 2)
        XCTAssertTrue(typo.stderr.contains("unknown command 'alocate'; did you mean 'allocate'?"), typo.stderr)
        XCTAssertFalse(typo.stderr.contains("serve"), "not reported as serve's usage: \(typo.stderr)")
    }

    func testWhoamiAndLogout() async throws {
        let token = try await broker.seed()
        let me = try broker.cli(["whoami", "-o", "json"], token: token)
        XCTAssertEqual(me.status, 0, me.stderr)
        XCTAssertEqual(me.json["role"], "tenant")
        XCTAssertEqual(me.json["tenant"]?["name"], "team")
        XCTAssertEqual(me.json["tenant"]?["quota"]?["gpus"], 16)
        let admin = try broker.cli(["whoami", "-o", "json"], token: broker.adminToken)
        XCTAssertEqual(admin.json, ["role": "admin"], admin.stderr)

        let home = ["XDG_CONFIG_HOME": work]
        XCTAssertEqual(try broker.cli(["login", "--server", broker.url, "--token", token], token: nil, environment: home).status, 0)
        XCTAssertEqual(try broker.cli(["whoami", "-o", "json"], token: nil, environment: home).json["role"], "tenant")
        let logout = try broker.cli(["logout"], token: nil, environment: home)
        XCTAssertEqual(logout.status, 0, logout.stderr)
        let after = try broker.cli(["whoami"], token: nil, environment: home)
        XCTAssertEqual(after.status, 1, "no token after logout")
        XCTAssertTrue(after.stderr.contains("no token"), after.stderr)
        let config = try String(contentsOfFile: work + "/gpubroker/config", encoding: .utf8)
        XCTAssertTrue(config.contains("server = \(broker.url)") && !config.contains("token ="), "logout keeps the server: \(config)")
    }

    func testContextsForSeveralServersOrTokens() async throws {
        let token = try await broker.seed()
        let home = ["XDG_CONFIG_HOME": work]
        for (name, secret) in [("team", token), ("ops", broker.adminToken)] {
            let login = try broker.cli(["login", "--server", broker.url, "--token", secret, "--context", name], token: nil, environment: home)
            XCTAssertEqual(login.status, 0, login.stderr)
        }
        let contexts = try broker.cli(["config", "get-contexts"], token: nil, environment: home)
        let rows = contexts.stdout.split(separator: "\n").dropFirst().map { $0.split(separator: " ").map(String.init) }
        XCTAssertEqual(rows, [["team", broker.url, "saved"], ["*", "ops", broker.url, "saved"]], contexts.stdout)
        XCTAssertEqual(try broker.cli(["whoami", "-o", "json"], token: nil, environment: home).json["role"], "admin")
        XCTAssertEqual(try broker.cli(["config", "use-context", "team"], token: nil, environment: home).status, 0)
        XCTAssertEqual(try broker.cli(["config", "current-context"], token: nil, environment: home).stdout, "team\n")
        XCTAssertEqual(try broker.cli(["whoami", "-o", "json"], token: nil, environment: home).json["role"], "tenant")
        let unknown = try broker.cli(["config", "use-context", "prod"], token: nil, environment: home)
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.stderr.contains("no context 'prod' (contexts: team, ops)"), unknown.stderr)
        XCTAssertEqual(try broker.cli(["config", "delete-context", "ops"], token: nil, environment: home).status, 0)
        XCTAssertEqual(try broker.cli(["config", "get-contexts"], token: nil, environment: home).stdout.split(separator: "\n").count, 2)
    }

    func testApplyingAFileTwiceIsOneAllocationUnlessAgain() async throws {
        let token = try await broker.seed()
        let file = work + "/pod.yaml"
        try """
            apiVersion: v1
            kind: Pod
            metadata: {name: one, labels: {app: one}}
            spec: {containers: [{name: c, image: x, resources: {limits: {nvidia.com/gpu: 1, cpu: 4, memory: 15Gi}}}]}
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let first = try broker.cli(["apply", "-f", file, "-o", "json"], token: token)
        XCTAssertEqual(first.status, 0, first.stderr)
        let second = try broker.cli(["apply", "-f", file, "-o", "json"], token: token)
        XCTAssertEqual(second.json["allocation"]?["id"], first.json["allocation"]?["id"], "the same file, the same allocation")
        let again = try broker.cli(["apply", "-f", file, "--again", "-o", "json"], token: token)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertNotEqual(again.json["allocation"]?["id"], first.json["allocation"]?["id"], "--again allocates anew")
        let list = try await broker.api("GET", "/v1/allocations", token: token)
        XCTAssertEqual(list.body["allocations"]?.arrayValue?.count, 2)
    }

    func testShortIdsAsTheConsoleShowsThem() async throws {
        let token = try await broker.seed()
        var ids: [String] = []
        for _ in 0..<2 {
            let made = try broker.cli(
                ["allocate", "--class", "gpu", "--series", "T4", "--cpu", "4", "--memory", "15", "-o", "json"], token: token)
            ids.append(try XCTUnwrap(made.json["id"]?.stringValue, made.stderr))
        }
        let last8 = String(ids[1].suffix(8))
        let got = try broker.cli(["allocations", "get", last8, "-o", "json"], token: token)
        XCTAssertEqual(got.status, 0, got.stderr)
        XCTAssertEqual(got.json["id"]?.stringValue, ids[1])
        let released = try broker.cli(["allocations", "release", String(ids[0].suffix(8)), "-o", "json"], token: token)
        XCTAssertEqual(released.json["status"], "released", released.stderr)
        // UUIDv7 ids made within a millisecond's neighbourhood share their start: ambiguous.
        let shared = String(ids[0].prefix(4))
        XCTAssertTrue(ids[1].hasPrefix(shared))
        let ambiguous = try broker.cli(["allocations", "get", shared], token: token)
        XCTAssertEqual(ambiguous.status, 1)
        XCTAssertTrue(ambiguous.stderr.contains("names 2 allocations"), ambiguous.stderr)
        let none = try broker.cli(["allocations", "get", "ffffffff"], token: token)
        XCTAssertTrue(none.stderr.contains("no allocation id starts or ends with 'ffffffff'"), none.stderr)
    }

    func testPoliciesAndWebhooksCommands() async throws {
        let token = try await broker.seed()
        let file = work + "/policy.yaml"
        try "strategy: prefer\nunits: [{regions: [r2], max: 1}, {regions: ['*']}]\n".write(toFile: file, atomically: true, encoding: .utf8)
        let put = try broker.cli(["policies", "put", "everything", "-f", file, "-o", "json"], token: token)
        XCTAssertEqual(put.status, 0, put.stderr)
        XCTAssertTrue(put.stderr.contains("empty selector: it now places every request"), "said, not silent: \(put.stderr)")
        try "selector: {team: a}\nunits: [{regions: [r2]}]\n".write(toFile: file, atomically: true, encoding: .utf8)
        let scoped = try broker.cli(["policies", "put", "scoped", "-f", file, "-o", "json"], token: token)
        XCTAssertFalse(scoped.stderr.contains("warning"), scoped.stderr)
        let list = try broker.cli(["policies", "-o", "json"], token: token)
        XCTAssertEqual(list.json["policies"]?.arrayValue?.compactMap { $0["name"]?.stringValue }, ["everything", "scoped"])
        XCTAssertEqual(try broker.cli(["policies", "delete", "everything"], token: token).status, 0)
        XCTAssertEqual(try broker.cli(["policies", "get", "everything"], token: token).status, 1)

        let hook = try broker.cli(["webhooks", "create", "--url", "http://127.0.0.1:9/hook", "--event", "allocation.released", "-o", "json"],
                                  token: token)
        XCTAssertEqual(hook.status, 0, hook.stderr)
        XCTAssertTrue(hook.json["secret"]?.stringValue?.hasPrefix("whsec_") == true, hook.stdout)
        let id = try XCTUnwrap(hook.json["id"]?.stringValue)
        XCTAssertEqual(try broker.cli(["webhooks", "-o", "json"], token: token).json["webhooks"]?.arrayValue?.count, 1)
        XCTAssertEqual(try broker.cli(["webhooks", "deliveries", id, "-o", "json"], token: token).json["deliveries"], [])
        XCTAssertEqual(try broker.cli(["webhooks", "delete", id], token: token).status, 0)
        XCTAssertEqual(try broker.cli(["webhooks", "-o", "json"], token: token).json["webhooks"], [])
    }

    func testLabelSelectorsAndWatchingAnAllocationUntilItEnds() async throws {
        let token = try await broker.seed()
        var ids: [String: String] = [:]
        for app in ["a", "b"] {
            let made = try broker.cli(
                ["allocate", "--class", "gpu", "--series", "T4", "--cpu", "4", "--memory", "15", "--label", "app=\(app)", "-o", "json"],
                token: token)
            ids[app] = try XCTUnwrap(made.json["id"]?.stringValue, made.stderr)
        }
        let selected = try broker.cli(["allocations", "list", "-l", "app=a", "-o", "json"], token: token)
        XCTAssertEqual(selected.json["allocations"]?.arrayValue?.compactMap { $0["id"]?.stringValue }, [ids["a"]!], selected.stderr)
        XCTAssertEqual(try broker.cli(["allocations", "list", "-l", "app"], token: token).status, 2, "-l takes key=value")

        let out = work + "/watch.out"
        let watcher = try Binary.spawn(
            ["allocations", "get", ids["a"]!, "--watch", "-o", "json"],
            environment: ["GPUBROKER_URL": broker.url, "GPUBROKER_TOKEN": token], stdin: "/dev/null", stdout: out, stderr: out)
        defer { kill(watcher, SIGKILL) }
        while ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").isEmpty { try await Task.sleep(for: .milliseconds(100)) }
        let released = try await broker.api("DELETE", "/v1/allocations/\(ids["a"]!)", token: token)
        XCTAssertEqual(released.status, 200)
        XCTAssertEqual(Binary.waitForExit(watcher), 0, "--watch ends when the allocation has ended")
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").map { try JSONValue.parse(Array($0.utf8)) }
        XCTAssertEqual(lines.first?["status"], "active")
        XCTAssertEqual(lines.last?["status"], "released", "one JSON document per change")
    }

    func testEventsFollowAndUsage() async throws {
        let token = try await broker.seed()
        let shape = ["--class", "gpu", "--series", "T4", "--cpu", "4", "--memory", "15", "-o", "json"]
        let first = try broker.cli(["allocate"] + shape, token: token)
        XCTAssertEqual(first.status, 0, first.stderr)
        let page = try broker.cli(["events", "-o", "json"], token: token)
        XCTAssertEqual(page.status, 0, page.stderr)
        XCTAssertEqual(page.stdout.split(separator: "\n").count, 1, "one reserved event, one line: \(page.stdout)")

        let out = work + "/follow.out"
        let follower = try Binary.spawn(
            ["events", "--follow", "-o", "json"], environment: ["GPUBROKER_URL": broker.url, "GPUBROKER_TOKEN": token],
            stdin: "/dev/null", stdout: out, stderr: out)
        defer {
            kill(follower, SIGKILL)
            Binary.waitForExit(follower)
        }
        let second = try broker.cli(["allocate"] + shape, token: token)
        let id = try XCTUnwrap(second.json["id"]?.stringValue)
        var seen = ""
        while !seen.contains(id) {
            XCTAssertNil(Binary.exitStatus(follower, block: false), "--follow keeps running: \(seen)")
            try await Task.sleep(for: .milliseconds(200))
            seen = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        }
        XCTAssertEqual(seen.split(separator: "\n").count, 2, "each event once: \(seen)")

        let usage = try broker.cli(["usage", "--group-by", "region", "-o", "json"], token: token)
        XCTAssertEqual(usage.status, 0, usage.stderr)
        XCTAssertEqual(usage.json["groupBy"], ["region"])
        let all = try broker.cli(["usage", "--all-tenants", "--group-by", "tenant", "-o", "json"], token: broker.adminToken)
        XCTAssertEqual(all.status, 0, all.stderr)
        XCTAssertEqual(try broker.cli(["usage", "--tenant", "x"], token: token).status, 2, "--tenant goes with --all-tenants")
    }

    func testCompletionOffersFlagValues() async throws {
        let token = try await broker.seed()
        let script = try Binary.run(["--generate-completion-script", "bash"])
        for word in ["general-purpose", "T4", "best-effort", "unschedulable"] {
            XCTAssertTrue(script.stdout.contains(word), "the bash script completes \(word)")
        }
        // What the script runs for a region option (`gpubroker allocate --region <TAB>`): the broker's region ids.
        let regions = try broker.cli(
            ["---completion", "allocate", "--", "--region", "3", "0", "gpubroker", "allocate", "--region", ""], token: token)
        XCTAssertEqual(regions.stdout.split(separator: "\n").map(String.init).sorted(), ["r1", "r2"], regions.stderr)
    }
}
