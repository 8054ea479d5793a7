import BrokerCore
import Foundation
import TestSupport
import XCTest

@testable import BrokerAPI

/// Manifest files with several documents, and the hardening of the manifest route: alias
/// amplification, a bounded `eci-use-specs`, and the other routes staying responsive.
final class ManifestStreamAPITests: XCTestCase {
    var broker: TestBroker!
    var token: String!

    override func setUp() async throws {
        broker = try TestBroker()
        token = try await broker.tenant().token
        try await broker.region("cn-beijing")
        try await broker.region("cn-hangzhou")
        try await broker.pool("cn-beijing", "cpu", cpu: 4, memory: 8, capacity: 10)
        try await broker.pool("cn-beijing", "example", series: "example-model", vendor: "nvidia", capacity: 10, price: 2)
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func post(_ yaml: String, key: String? = nil) async throws -> TestBroker.Response {
        var headers = ["Content-Type": "application/yaml"]
        if let key { headers["Idempotency-Key"] = key }
        return try await broker.call("POST", "/v1/allocations/from-manifest", token: token, body: Array(yaml.utf8), headers: headers)
    }

    func testAStreamPlacesItsWorkloadAndReturnsTheOtherDocuments() async throws {
        let stream = """
            apiVersion: v1
            kind: Namespace
            metadata: {name: demo}
            ---
            \(SeedYAML.gpuDefaultRegion)
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              ports: [{port: 80}]
            ---
            """
        let response = try await post(stream)
        XCTAssertEqual(response.status, 201, response.text)
        XCTAssertEqual(response.json["manifests"]?.array.map { $0["kind"]?.stringValue }, ["Namespace", "Deployment", "Service"])
        XCTAssertEqual(response.json["manifestRegions"], [.null, "cn-beijing", "cn-beijing"])
        XCTAssertEqual(response.json["allocations"]?.array.count, 1)
        XCTAssertEqual(response.json["allocation"]?["id"], response.json["allocations"]?[0]?["id"])
        let list = try await broker.call(
            "POST", "/v1/allocations/from-manifest", token: token,
            json: ["apiVersion": "v1", "kind": "List", "items": [try YAMLBodies.parse(Array(SeedYAML.cpuDefaultRegion.utf8))]])
        XCTAssertEqual(list.status, 201, list.text)
    }

    /// The file is granted in one transaction (issue 25): the workload placed before the
    /// one that cannot be leaves nothing behind, not even a released allocation.
    func testAWorkloadThatCannotBePlacedLeavesNothingOfTheFile() async throws {
        let tooMany = SeedYAML.gpuDefaultRegion.replacingOccurrences(of: "replicas: 1", with: "replicas: 11")
        let response = try await post(SeedYAML.cpuDefaultRegion + "\n---\n" + tooMany, key: "file-1")
        XCTAssertEqual(response.status, 409, response.text)
        let allocations = try await broker.call("GET", "/v1/allocations", token: token)
        XCTAssertEqual(allocations.json["allocations"]?.array.count, 0, allocations.text)
        let report = try await LedgerCheck.run(broker)
        XCTAssertTrue(report.isEmpty, "ledger: \(report)")
        // The same file and key once capacity is there: placed, its key not held by the refusal.
        try await broker.pool("cn-beijing", "example", series: "example-model", vendor: "nvidia", capacity: 20, price: 2)
        let retry = try await post(SeedYAML.cpuDefaultRegion + "\n---\n" + tooMany, key: "file-1")
        XCTAssertEqual(retry.status, 201, retry.text)
        XCTAssertEqual(retry.json["allocations"]?.array.map { $0["status"]?.stringValue }, ["active", "active"])
        let replay = try await post(SeedYAML.cpuDefaultRegion + "\n---\n" + tooMany, key: "file-1")
        XCTAssertEqual(replay.json["allocations"]?.array.map { $0["id"] }, retry.json["allocations"]?.array.map { $0["id"] })
    }

    /// Issue 17 item 5: each listed type is a placement attempt; ECI allows 5.
    func testMoreThanFiveInstanceTypesAre422() async throws {
        let types = (1...6).map { "ecs.t\($0).large" }.joined(separator: ",")
        let manifest = SeedYAML.eciGPUPod.replacingOccurrences(of: "ecs.gn5-c4g1.xlarge", with: types)
        XCTAssertTrue(manifest.contains(types))
        let response = try await post(manifest)
        XCTAssertEqual(response.status, 422, response.text)
        XCTAssertEqual(response.json["errors"]?[0]?["field"], "metadata.annotations.k8s.aliyun.com/eci-use-specs")
        XCTAssertTrue(response.text.contains("at most 5"), response.text)
    }

    /// A Pod whose container arguments name one anchored annotation `references` times.
    func amplifiedPod(_ text: String, references: Int) -> String {
        """
        apiVersion: v1
        kind: Pod
        metadata:
          name: amplified
          annotations: {note: &big "\(text)"}
        spec:
          containers:
            - name: c
              image: x
              args: [\(Array(repeating: "*big", count: references).joined(separator: ", "))]
        """
    }

    /// Issue 17 item 1: one anchored string referenced thousands of times expands past the
    /// byte budget long before the node budget; refused at once, no huge answer.
    func testAliasAmplificationIsRefusedByItsExpandedSize() async throws {
        let yaml = amplifiedPod(String(repeating: "x", count: 10_000), references: 3_000)
        let started = ContinuousClock.now
        let response = try await post(yaml)
        let elapsed = ContinuousClock.now - started
        XCTAssertEqual(response.status, 400, String(response.text.prefix(300)))
        XCTAssertTrue(response.text.contains("expands to more than \(YAMLBodies.maxExpandedBytes) bytes"), String(response.text.prefix(300)))
        XCTAssertLessThan(elapsed, .seconds(1))
        XCTAssertLessThan(response.body.count, 2_000)
    }

    /// Issue 17 item 1: an async route answers while several costly manifests (each just
    /// within the budget) are being read; some may be told to retry (503) when they waited
    /// past the deadline for a reader. A smoke test on a loaded machine: that the reading is
    /// off the cooperative pool is shown by `CPUWorkTests`.
    func testOtherRoutesAnswerWhileManifestsAreRead() async throws {
        let heavy = amplifiedPod(String(repeating: "x ", count: 5_000), references: 390)
        let broker = self.broker!
        let token = self.token!
        let started = ContinuousClock.now
        async let heavyAnswers = withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    try await broker.call(
                        "POST", "/v1/allocations/from-manifest", token: token, body: Array(heavy.utf8),
                        headers: ["Content-Type": "application/yaml"]
                    ).status
                }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        try await Task.sleep(for: .milliseconds(100))
        let asked = ContinuousClock.now
        let regions = try await broker.call("GET", "/v1/regions", token: token)
        let regionsTook = ContinuousClock.now - asked
        let statuses = try await heavyAnswers
        let heavyTook = ContinuousClock.now - started
        XCTAssertEqual(regions.status, 200)
        print("manifests: \(statuses) in \(heavyTook); GET /v1/regions meanwhile: \(regionsTook)")
        XCTAssertEqual(Set(statuses).subtracting([201, 503]), [], "\(statuses)")
        XCTAssertLessThan(regionsTook, heavyTook, "GET /v1/regions answered while manifests were read")
    }
}
