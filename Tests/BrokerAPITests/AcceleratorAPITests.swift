import BrokerCore
import Foundation
import JSON
import TestSupport
import XCTest

/// Pools and requests carry the accelerator end to end, and manifests from the world get
/// the hardware they ask for or a refusal that names why.
final class AcceleratorAPITests: XCTestCase {
    var broker: TestBroker!
    var token: String!

    override func setUp() async throws {
        broker = try TestBroker()
        token = try await broker.tenant().token
        try await broker.region("us-east-1", primary: true)
        try await broker.pool("us-east-1", "cpu", cpu: 64, memory: 256, capacity: 20, price: 0.1)
        try await broker.pool("us-east-1", "gaudi2", series: "Gaudi2", gpuMemory: 96, gpus: 8, cpu: 160, memory: 1024, capacity: 4, price: 1)
        try await broker.pool("us-east-1", "mi300x", series: "MI300X", gpuMemory: 192, gpus: 8, cpu: 128, memory: 2048, capacity: 4, price: 2)
        try await broker.pool("us-east-1", "p5", series: "H100", interconnect: ["nvlink", "efa"], partitions: ["1g.10gb", "3g.40gb"],
                              gpuMemory: 80, gpus: 8, cpu: 192, memory: 2048, capacity: 2, price: 90)
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func manifest(_ yaml: String) async throws -> TestBroker.Response {
        try await broker.call(
            "POST", "/v1/allocations/from-manifest", token: token, body: Array(yaml.utf8),
            headers: ["Content-Type": "application/yaml"])
    }

    func testPoolsDescribeTheirAccelerator() async throws {
        let inventory = try await broker.call("GET", "/v1/regions/us-east-1/inventory", token: token).json
        let p5 = inventory["pools"]?.arrayValue?.first { $0["id"] == "p5" }
        XCTAssertEqual(p5?["gpuVendor"], "nvidia", "inferred from the model")
        XCTAssertEqual(p5?["gpuPartitions"], ["1g.10gb", "3g.40gb"])
        XCTAssertEqual(p5?["gpuInterconnect"], ["nvlink", "efa"])
        let cpu = inventory["pools"]?.arrayValue?.first { $0["id"] == "cpu" }
        XCTAssertNil(cpu?["gpuVendor"])
        XCTAssertNil(cpu?["gpuPartitions"])
        // A model the broker does not know is `other` unless the admin says whose it is.
        let custom = try await broker.pool("us-east-1", "x1", series: "X1", capacity: 1).json
        XCTAssertEqual(custom["gpuVendor"], "other")
        let said = try await broker.pool("us-east-1", "x2", series: "X2", vendor: "amd", capacity: 1).json
        XCTAssertEqual(said["gpuVendor"], "amd")

        // Bad accelerator fields: 422 naming each, nothing changed.
        let bad = try await broker.call(
            "PUT", "/v1/admin/regions/us-east-1/pools/bad", token: broker.adminToken,
            json: ["computeClass": "gpu", "gpuSeries": "T4", "gpuVendor": "acme", "gpuMemoryGiB": 16, "gpusPerInstance": 1,
                   "gpuPartitions": ["3G.40GB"], "cpu": 4, "memoryGiB": 16, "instanceType": "t", "capacity": 1, "pricePerHour": 1])
        XCTAssertEqual(bad.status, 422)
        XCTAssertEqual(Set(bad.json["errors"]?.arrayValue?.compactMap { $0["field"]?.stringValue } ?? []), ["gpuVendor", "gpuPartitions[0]"])
        let cpuWithVendor = try await broker.call(
            "PUT", "/v1/admin/regions/us-east-1/pools/bad", token: broker.adminToken,
            json: ["computeClass": "general-purpose", "gpuVendor": "nvidia", "cpu": 4, "memoryGiB": 16, "instanceType": "t",
                   "capacity": 1, "pricePerHour": 1])
        XCTAssertEqual(cpuWithVendor.status, 422)
        XCTAssertTrue(cpuWithVendor.text.contains("only allowed for computeClass gpu"), cpuWithVendor.text)
        let after = try await broker.call("GET", "/v1/regions/us-east-1/inventory", token: token).json
        XCTAssertNil(after["pools"]?.arrayValue?.first { $0["id"] == "bad" })
    }

    func testRequestsConstrainVendorMemoryLinkAndPartition() async throws {
        func grant(_ extra: [String: JSONValue]) async throws -> TestBroker.Response {
            var body: [String: JSONValue] = ["computeClass": "gpu", "cpu": 4, "memoryGiB": 16]
            body.merge(extra) { _, new in new }
            return try await broker.call("POST", "/v1/allocations", token: token, json: .object(body))
        }
        // The cheapest pool is Gaudi2: a vendor, device memory, a link or a partition rule it out.
        let cases: [([String: JSONValue], String)] = [
            (["gpuVendor": "amd"], "mi300x"), (["minGPUMemoryGiB": 100], "mi300x"), (["gpuVendor": "intel"], "gaudi2"),
            (["minGPUMemoryGiB": 64, "gpuInterconnect": "efa"], "p5"), (["gpuVendor": "nvidia", "gpuPartition": "3g.40gb"], "p5"),
        ]
        for (extra, pool) in cases {
            let answer = try await grant(extra)
            XCTAssertEqual(answer.status, 201, "\(extra): \(answer.text)")
            XCTAssertEqual(answer.json["instances"]?[0]?["poolId"]?.stringValue, pool, "\(extra)")
        }
        let none = try await grant(["gpuVendor": "google"])
        XCTAssertEqual(none.status, 409)
        XCTAssertTrue(none.text.contains("vendor google"), none.text)
        let cpu = try await broker.call(
            "POST", "/v1/allocations", token: token, json: ["computeClass": "general-purpose", "gpuVendor": "nvidia", "cpu": 1, "memoryGiB": 1])
        XCTAssertEqual(cpu.status, 422)
        XCTAssertEqual(cpu.json["errors"]?[0]?["field"], "gpuVendor")
    }

    /// NVIDIA's resource name on a file whose only free accelerators are Gaudi2 and MI300X:
    /// never granted there; a Gaudi request goes to the Gaudi pool.
    func testAResourceNameNeverLandsOnAnotherVendorsDevice() async throws {
        try await broker.pool("us-east-1", "p5", series: "H100", gpuMemory: 80, gpus: 8, cpu: 192, memory: 2048, capacity: 0, price: 90)
        let pod = { (resource: String) in
            """
            apiVersion: v1
            kind: Pod
            metadata: {name: train}
            spec:
              containers:
              - name: c
                image: x
                resources:
                  limits: {\(resource): 1}
            """
        }
        let nvidia = try await manifest(pod("nvidia.com/gpu"))
        XCTAssertEqual(nvidia.status, 409, "the H100 pool is full; Gaudi2 and MI300X are free but not NVIDIA's: \(nvidia.text)")
        let gaudi = try await manifest(pod("habana.ai/gaudi"))
        XCTAssertEqual(gaudi.status, 201, gaudi.text)
        XCTAssertEqual(gaudi.json["allocation"]?["instances"]?[0]?["poolId"], "gaudi2")
        let unknown = try await manifest(pod("example.com/fpga"))
        XCTAssertEqual(unknown.status, 422)
        XCTAssertTrue(unknown.text.contains("asks for example.com/fpga, an extended resource the broker does not know"), unknown.text)
        let tpu = try await manifest(pod("google.com/tpu"))
        XCTAssertEqual(tpu.status, 422)
        XCTAssertTrue(tpu.text.contains("no pool offers TPUs"), tpu.text)
    }

    func testSchedulerObjectsPassWithAWarningAndZeroReplicasReserveNothing() async throws {
        let stream = """
            apiVersion: scheduling.volcano.sh/v1beta1
            kind: Queue
            metadata: {name: research}
            spec: {weight: 1}
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: web
              annotations:
            spec:
              replicas: 2
              selector: {matchLabels: {app: web}}
              template:
                metadata: {labels: {app: web}}
                spec:
                  containers:
                  - name: c
                    image: nginx
                    resources:
            """
        let placed = try await manifest(stream)
        XCTAssertEqual(placed.status, 201, placed.text)
        XCTAssertEqual(placed.json["warnings"]?.arrayValue?.count, 1)
        XCTAssertTrue(placed.json["warnings"]?[0]?.stringValue?.contains("Queue research (API group scheduling.volcano.sh)") == true)
        XCTAssertEqual(placed.json["manifestRegions"], [nil, "us-east-1"], "the Queue once, the Deployment's copy in its region")

        let idle = try await manifest(stream.replacingOccurrences(of: "replicas: 2", with: "replicas: 0"))
        XCTAssertEqual(idle.status, 200, idle.text)
        XCTAssertNil(idle.json["allocation"])
        XCTAssertEqual(idle.json["allocations"], [])
        XCTAssertEqual(idle.json["manifests"]?[1]?["spec"]?["replicas"], 0)
        XCTAssertEqual(idle.json["warnings"]?.arrayValue?.count, 2)
        let list = try await broker.call("GET", "/v1/allocations", token: token).json
        XCTAssertEqual(list["allocations"]?.arrayValue?.count, 1, "only the first file's allocation")
    }

    func testAnUnknownRegionPinIsNamed() async throws {
        let pinned = try await manifest("""
            apiVersion: v1
            kind: Pod
            metadata: {name: p}
            spec:
              nodeSelector: {topology.kubernetes.io/region: eu-west-9}
              containers: [{name: c, image: x}]
            """)
        XCTAssertEqual(pinned.status, 422, pinned.text)
        XCTAssertTrue(pinned.text.contains("pins unknown region 'eu-west-9'"), pinned.text)
    }

    /// A worker group scaled to 0 still gets the region its head went to: when it scales
    /// up, its pods land beside the head.
    func testEveryTemplateOfAPlacedGroupCarriesTheRegion() async throws {
        let answer = try await manifest("""
            apiVersion: ray.io/v1
            kind: RayCluster
            metadata: {name: rc}
            spec:
              headGroupSpec:
                template:
                  spec:
                    containers: [{name: head, image: ray, resources: {limits: {cpu: 1, memory: 2Gi}}}]
              workerGroupSpecs:
              - groupName: gpu
                replicas: 0
                minReplicas: 0
                maxReplicas: 4
                template:
                  spec:
                    containers: [{name: w, image: ray, resources: {limits: {nvidia.com/gpu: 1}}}]
            """)
        XCTAssertEqual(answer.status, 201, answer.text)
        let copy = answer.json["manifests"]?[0]
        XCTAssertEqual(copy?["spec"]?["headGroupSpec"]?["template"]?["spec"]?["nodeSelector"]?["topology.kubernetes.io/region"], "us-east-1")
        XCTAssertEqual(
            copy?["spec"]?["workerGroupSpecs"]?[0]?["template"]?["spec"]?["nodeSelector"]?["topology.kubernetes.io/region"], "us-east-1")
        XCTAssertEqual(copy?["spec"]?["workerGroupSpecs"]?[0]?["replicas"], 0)
    }
}
