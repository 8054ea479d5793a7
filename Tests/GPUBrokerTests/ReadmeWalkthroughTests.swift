import Foundation
import JSON
import TestHarness
import XCTest

/// The README's walkthrough as a new operator runs it: every shell block between
/// `<!-- walkthrough:start -->` and `<!-- walkthrough:end -->`, in order, in one
/// `bash -euo pipefail` (so a failing command or an undefined variable stops it), in a
/// directory laid out like the repository after `scripts/serve`: `.gpubroker` (the broker's
/// data directory), `.build/release` (the binary under test), `examples` and `scripts`.
/// The first block is the broker: `scripts/serve ARGS` is started here as
/// `gpubroker serve --demo ARGS` on a throwaway database. The text is run as written except
/// for two addresses: the broker's port (8080) and the webhook receiver's (9099) become free
/// ones, so that runs do not collide.
final class ReadmeWalkthroughTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let work = "/tmp/gpb-readme-\(UUID().uuidString.prefix(8))"

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: work)
    }

    /// The walkthrough's shell blocks, in order.
    static func blocks(_ readme: String) throws -> [String] {
        guard let start = readme.range(of: "<!-- walkthrough:start -->"),
            let end = readme.range(of: "<!-- walkthrough:end -->", range: start.upperBound..<readme.endIndex)
        else { throw TestSetupError("README.md has no walkthrough markers") }
        let section = readme[start.upperBound..<end.lowerBound]
        return section.components(separatedBy: "```sh\n").dropFirst().map { String($0.components(separatedBy: "\n```")[0]) }
    }

    func testTheWalkthroughRunsAsWritten() async throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        var blocks = try Self.blocks(readme)
        XCTAssertGreaterThan(blocks.count, 5, "the walkthrough has its blocks")
        let serve = blocks.removeFirst().split(separator: " ").map(String.init)
        XCTAssertEqual(serve.first, "scripts/serve", "the walkthrough starts the broker first")

        let venv = Self.root.appendingPathComponent(".build/contract-venv").path
        guard FileManager.default.fileExists(atPath: venv + "/bin/python") else {
            throw TestSetupError("no venv at \(venv): run scripts/test-venv (scripts/test does)")
        }
        let files = FileManager.default
        try files.createDirectory(atPath: work + "/.build", withIntermediateDirectories: true)
        try files.createSymbolicLink(atPath: work + "/.build/release", withDestinationPath: Binary.url.deletingLastPathComponent().path)
        try files.createSymbolicLink(atPath: work + "/.build/contract-venv", withDestinationPath: venv)
        for folder in ["examples", "scripts"] {
            try files.createSymbolicLink(atPath: work + "/" + folder, withDestinationPath: Self.root.appendingPathComponent(folder).path)
        }

        let broker = try ServedBroker(
            arguments: ["serve", "--demo"] + serve.dropFirst(),
            environment: ["GPUBROKER_ADMIN_TOKEN": "", "GPUBROKER_DATA_DIR": work + "/.gpubroker"])
        defer { broker.stop() }
        try await broker.waitReady()

        let receiverPort = try freePort()
        let script = ["cd '\(work)'"] + blocks.enumerated().map { index, block in
            "echo '@@ block \(index + 1)'\n" + block
                .replacingOccurrences(of: "127.0.0.1:8080", with: "127.0.0.1:\(broker.port)")
                .replacingOccurrences(of: "localhost:8080", with: "127.0.0.1:\(broker.port)")
                .replacingOccurrences(of: "9099", with: String(receiverPort))
        } + ["echo '@@ done'"]
        try script.joined(separator: "\n").write(toFile: work + "/walkthrough.sh", atomically: true, encoding: .utf8)

        let pid = try Binary.spawn(
            ["-euo", "pipefail", work + "/walkthrough.sh"], environment: [:], stdin: "/dev/null", stdout: work + "/out",
            stderr: work + "/err", executable: "/bin/bash", newGroup: true)
        // Whatever the script left running (the webhook receiver when it stopped early) goes with it.
        defer { kill(-pid, SIGTERM) }
        var status: Int32?
        for _ in 0..<1800 where status == nil {
            status = Binary.exitStatus(pid, block: false)
            if status == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        let out = (try? String(contentsOfFile: work + "/out", encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: work + "/err", encoding: .utf8)) ?? ""
        let reached = out.components(separatedBy: "\n").last { $0.hasPrefix("@@ ") } ?? "none"
        XCTAssertEqual(status, 0, "the walkthrough stopped in \(reached) (status \(status.map(String.init) ?? "none: timed out")); stderr:\n\(err)")
        XCTAssertTrue(out.hasSuffix("@@ done\n"), "every block ran")

        XCTAssertTrue(out.contains("gpubroker 0.1.0"), "version")
        // Block 3 ends with `allocations list ... -l app=demo`: its list holds the labelled allocation.
        let block3 = out.components(separatedBy: "@@ block 3\n").last?.components(separatedBy: "@@ block 4").first ?? ""
        let listed = block3.components(separatedBy: #""allocations": ["#).last ?? ""
        XCTAssertTrue(listed.contains(#""app": "demo""#), "-l app=demo lists the allocation: \(listed)")
        XCTAssertTrue(out.contains(#"{"verified":true,"type":"allocation.released"}"#), "the receiver verified the release's delivery: \(out)")

        // What the blocks did, read through the API as the demo tenant.
        let token = try String(contentsOfFile: work + "/.gpubroker/demo-token", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let list = try await broker.api("GET", "/v1/allocations?limit=100", token: token)
        let allocations = list.body["allocations"]?.arrayValue ?? []
        let applied = allocations.filter { $0["labels"]?["app"]?.stringValue == "demo-inference" }
        XCTAssertEqual(applied.count, 1, "applying the same file twice made one allocation")
        let byPolicy = allocations.filter { $0["request"]?["shape"]?["computeClass"]?.stringValue == "general-purpose" }
        XCTAssertEqual(byPolicy.count, 1)
        let idc = (byPolicy.first?["instances"]?.arrayValue ?? []).filter { $0["region"]?.stringValue == "idc-shanghai" }
        XCTAssertEqual(idc.count, 3, "--policy idc-first put 3 replicas on the on-premises region")
        let policy = try await broker.api("GET", "/v1/policies/idc-first", token: token)
        XCTAssertEqual(policy.body["selector"]?["placement"]?.stringValue, "idc-first", "the policy is not the tenant's default")
    }
}
