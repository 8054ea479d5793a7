import BrokerCore
import BrokerStore
import JSON
import Foundation
import PostgresClient
import TestSupport
import XCTest

@testable import BrokerAPI

/// Manifest files with several documents, and the hardening of the manifest route: alias
/// amplification, a bounded `eci-use-specs`, the other routes staying responsive, a file
/// granted all or nothing, and a retry after a lost answer replaying its grant.
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

    func allocationIds() async throws -> [String] {
        let listed = try await broker.call("GET", "/v1/allocations", token: token)
        return (listed.json["allocations"]?.array ?? []).compactMap { $0["id"]?.stringValue }
    }

    /// Issue 31, N4: an answer lost after the grants were committed (a 503, a dropped
    /// connection) must not turn a retry into a second grant. A file sent without
    /// `Idempotency-Key` is recorded under a key of its own, for a minute.
    func testARetryAfterTheAnswerFailedReplaysTheSameAllocations() async throws {
        defer { ManifestRoutes.answerFault.withLock { $0 = nil } }
        ManifestRoutes.answerFault.withLock { $0 = { throw Problem.unavailable("the answer path failed after the commit") } }
        let lost = try await post(SeedYAML.cpuDefaultRegion)
        XCTAssertEqual(lost.status, 503, lost.text)
        let granted = try await allocationIds()
        XCTAssertEqual(granted.count, 1, "the grant was committed before the answer failed")

        ManifestRoutes.answerFault.withLock { $0 = nil }
        let retry = try await post(SeedYAML.cpuDefaultRegion)
        XCTAssertEqual(retry.status, 201, retry.text)
        XCTAssertEqual(retry.json["allocation"]?["id"]?.stringValue, granted[0], "the retry answers the first grant")
        let after = try await allocationIds()
        XCTAssertEqual(after, granted, "the retry granted nothing new")

        // The key is the tenant's own: another tenant's identical file is its own grant.
        let other = try await broker.tenant("other").token
        let theirs = try await broker.call(
            "POST", "/v1/allocations/from-manifest", token: other, body: Array(SeedYAML.cpuDefaultRegion.utf8),
            headers: ["Content-Type": "application/yaml"])
        XCTAssertEqual(theirs.status, 201, theirs.text)
        XCTAssertNotEqual(theirs.json["allocation"]?["id"]?.stringValue, granted[0])
        let report = try await LedgerCheck.run(broker)
        XCTAssertTrue(report.isEmpty, "ledger: \(report)")
    }

    func testTheSameFileAfterItsKeysLifetimeIsANewRequest() async throws {
        let first = try await post(SeedYAML.cpuDefaultRegion)
        XCTAssertEqual(first.status, 201, first.text)
        let aged = try await broker.pool.withConnection { c in
            try c.query(
                "UPDATE idempotency_keys SET created_at = now() - make_interval(secs => $1 + 1) RETURNING key",
                [ManifestRoutes.derivedKeyLifetimeSeconds]
            ).count
        }
        XCTAssertEqual(aged, 1, "one derived key recorded")
        let second = try await post(SeedYAML.cpuDefaultRegion)
        XCTAssertEqual(second.status, 201, second.text)
        XCTAssertNotEqual(second.json["allocation"]?["id"], first.json["allocation"]?["id"])
        let ids = try await allocationIds()
        XCTAssertEqual(ids.count, 2)
        // A changed file is a new request at once.
        let changed = try await post(SeedYAML.cpuDefaultRegion.replacingOccurrences(of: "replicas: 1", with: "replicas: 2"))
        XCTAssertEqual(changed.status, 201, changed.text)
        let all = try await allocationIds()
        XCTAssertEqual(all.count, 3)
    }

    /// A derived key names the file: when the inventory changed what the same file reads
    /// as, its first answer is replayed, not refused as a reused key the client never sent.
    /// A client's key still refuses another body.
    func testADerivedKeyReplaysTheFileEvenWhenItNowTranslatesOtherwise() async throws {
        let direct = try await broker.tenant("direct")
        let tenantId = try XCTUnwrap(UUID(uuidString: direct.id))
        let store = AllocationStore(pool: broker.pool)
        func plan(cpu: String, lifetime: Int?) throws -> ManifestGrantPlan {
            let pod: JSONValue = ["apiVersion": "v1", "kind": "Pod", "metadata": ["name": "p"], "spec": ["containers": [
                ["name": "c", "image": "x", "resources": ["requests": ["cpu": .string(cpu), "memory": "1Gi"]]],
            ]]]
            return ManifestGrantPlan(
                try ManifestTranslator.plan([pod]).workloads, key: "file", groupRegions: [], keyLifetimeSeconds: lifetime)
        }
        let first = try await store.grantManifest(tenantId: tenantId, plan: try plan(cpu: "1", lifetime: 60), actor: "t")
        let again = try await store.grantManifest(tenantId: tenantId, plan: try plan(cpu: "2", lifetime: 60), actor: "t")
        XCTAssertEqual(again.flatMap { $0.map(\.id) }, first.flatMap { $0.map(\.id) })
        do {
            _ = try await store.grantManifest(tenantId: tenantId, plan: try plan(cpu: "2", lifetime: nil), actor: "t")
            XCTFail("a client's key with another body was replayed")
        } catch StoreError.idempotencyKeyReused {}
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
