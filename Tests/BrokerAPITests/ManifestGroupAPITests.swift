import BrokerCore
import Foundation
import TestSupport
import XCTest

/// Workloads whose pod templates run together: every template placed in one region, all
/// or none, each as its own allocation; a replay with the same key answers the same ones.
final class ManifestGroupAPITests: XCTestCase {
    var broker: TestBroker!
    var token: String!

    override func setUp() async throws {
        broker = try TestBroker()
        token = try await broker.tenant().token
        // The primary region has CPUs for every leader but one GPU: groups go to cn-hangzhou.
        try await broker.region("cn-beijing", primary: true)
        try await broker.region("cn-hangzhou")
        try await broker.pool("cn-beijing", "cpu", cpu: 4, memory: 8, capacity: 10)
        try await broker.pool("cn-beijing", "gpu", series: "H100", gpuMemory: 80, cpu: 16, memory: 64, capacity: 1)
        try await broker.pool("cn-hangzhou", "cpu", cpu: 4, memory: 8, capacity: 10)
        try await broker.pool("cn-hangzhou", "gpu", series: "H100", gpuMemory: 80, cpu: 16, memory: 64, capacity: 4)
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    /// Two groups of a CPU leader and a GPU worker.
    let leaderWorkerSet = """
        apiVersion: leaderworkerset.x-k8s.io/v1
        kind: LeaderWorkerSet
        metadata:
          name: vllm
        spec:
          replicas: 2
          leaderWorkerTemplate:
            size: 2
            leaderTemplate:
              spec:
                containers:
                  - name: leader
                    image: vllm
                    resources: {requests: {cpu: 1, memory: 1Gi}}
            workerTemplate:
              spec:
                containers:
                  - name: worker
                    image: vllm
                    resources: {limits: {nvidia.com/gpu: 1, cpu: 4, memory: 16Gi}}
        """

    func post(_ yaml: String, key: String? = nil) async throws -> TestBroker.Response {
        var headers = ["Content-Type": "application/yaml"]
        if let key { headers["Idempotency-Key"] = key }
        return try await broker.call("POST", "/v1/allocations/from-manifest", token: token, body: Array(yaml.utf8), headers: headers)
    }

    func allocated(_ region: String) async throws -> [String: Int] {
        let inventory = try await broker.call("GET", "/v1/regions/\(region)/inventory", token: token)
        var result: [String: Int] = [:]
        for pool in inventory.json["pools"]?.array ?? [] {
            result[pool["id"]?.stringValue ?? "?"] = Int(pool["allocated"]?.numberValue ?? -1)
        }
        return result
    }

    func testEveryTemplateLandsInOneRegionOrNoneDoes() async throws {
        let first = try await post(leaderWorkerSet, key: "g1")
        XCTAssertEqual(first.status, 201, first.text)
        let allocations = first.json["allocations"]?.array ?? []
        XCTAssertEqual(allocations.map { $0["replicas"] }, [2, 2])
        let regions = Set(allocations.flatMap { $0["instances"]?.array ?? [] }.map { $0["region"]?.stringValue })
        XCTAssertEqual(regions, ["cn-hangzhou"], "the primary region cannot hold both workers")
        XCTAssertEqual(first.json["manifestRegions"], ["cn-hangzhou"])
        XCTAssertEqual(first.json["manifests"]?[0]?["metadata"]?["name"], "vllm-cn-hangzhou")
        let replay = try await post(leaderWorkerSet, key: "g1")
        XCTAssertEqual(replay.status, 201)
        XCTAssertEqual(replay.json["allocations"]?.array.map { $0["id"] }, allocations.map { $0["id"] })

        // Sent again without a key, the same file would replay the last: new keys ask for more.
        let second = try await post(leaderWorkerSet, key: "g2")
        XCTAssertEqual(second.status, 201, second.text)
        // No region has two more GPUs: refused, and the leaders' CPUs are not held either.
        let third = try await post(leaderWorkerSet, key: "g3")
        XCTAssertEqual(third.status, 409, third.text)
        XCTAssertEqual(third.json["decisions"]?.array.compactMap { $0["region"]?.stringValue }, ["cn-beijing", "cn-hangzhou"])
        let beijing = try await allocated("cn-beijing")
        let hangzhou = try await allocated("cn-hangzhou")
        XCTAssertEqual(beijing, ["cpu": 0, "gpu": 0])
        XCTAssertEqual(hangzhou, ["cpu": 4, "gpu": 4])
        let listed = try await broker.call("GET", "/v1/allocations", token: token)
        XCTAssertEqual(listed.json["allocations"]?.array.count, 4)
        let report = try await LedgerCheck.run(broker)
        XCTAssertTrue(report.isEmpty, "ledger: \(report)")
    }
}
