import JSON
import XCTest
@testable import BrokerCore

final class AllocationRequestParserTests: XCTestCase {
    let gpuBody = json(#"{"computeClass": "gpu", "gpuSeries": ["A10", "L20"], "cpu": 4, "memoryGiB": 16}"#)
    let cpuBody = json(#"{"computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4}"#)

    func testDesignExample() throws {
        let body = json("""
        {
          "computeClass": "gpu", "qos": "default", "gpuSeries": ["A10", "L20"],
          "gpuCount": 1, "cpu": 4, "memoryGiB": 16, "replicas": 4,
          "instanceType": "ecs.gn7i-c8g1.2xlarge",
          "model": {"parameters": "8B", "precision": "fp16"},
          "placement": {"strategy": "prefer", "units": [{"regions": ["idc-shanghai"], "max": 3}, {"regions": ["*"]}]},
          "allOrNothing": true, "leaseSeconds": 600, "queue": false, "labels": {"app": "qwen3-8b"}
        }
        """)
        let request = try AllocationRequest.parse(body)
        XCTAssertEqual(request.shape.computeClass, .gpu)
        XCTAssertEqual(request.shape.qos, .default)
        XCTAssertEqual(request.shape.gpuSeries, ["A10", "L20"])
        XCTAssertEqual(request.shape.gpuCount, 1)
        XCTAssertEqual(request.shape.cpu, 4)
        XCTAssertEqual(request.shape.memoryGiB, 16)
        XCTAssertEqual(request.shape.instanceType, "ecs.gn7i-c8g1.2xlarge")
        XCTAssertEqual(request.replicas, 4)
        XCTAssertEqual(request.model, ModelSpec(parameters: 8e9, precision: .fp16))
        XCTAssertEqual(request.shape.requiredGPUMemoryGiB!, 8e9 * 2 / 1_073_741_824 / 0.9, accuracy: 1e-9)
        XCTAssertEqual(request.placement, PlacementPolicy(strategy: .prefer, units: [
            PlacementUnit(regions: ["idc-shanghai"], max: 3), PlacementUnit(regions: ["*"]),
        ]))
        XCTAssertTrue(request.allOrNothing)
        XCTAssertEqual(request.leaseSeconds, 600)
        XCTAssertFalse(request.queue)
        XCTAssertEqual(request.labels, ["app": "qwen3-8b"])
        XCTAssertNil(request.region)
    }

    func testDefaults() throws {
        let request = try AllocationRequest.parse(gpuBody)
        XCTAssertEqual(request.shape.qos, .default)
        XCTAssertEqual(request.shape.gpuCount, 1)
        XCTAssertEqual(request.replicas, 1)
        XCTAssertTrue(request.allOrNothing)
        XCTAssertEqual(request.leaseSeconds, 300)
        XCTAssertFalse(request.queue)
        XCTAssertEqual(request.queueTimeoutSeconds, 3600)
        XCTAssertEqual(request.labels, [:])
        XCTAssertNil(request.placement)
        XCTAssertNil(request.model)
        XCTAssertNil(request.shape.requiredGPUMemoryGiB)
        XCTAssertNil(request.shape.instanceType)

        let cpu = try AllocationRequest.parse(cpuBody)
        XCTAssertEqual(cpu.shape.gpuCount, 0)
        XCTAssertEqual(cpu.shape.gpuSeries, [])
        XCTAssertEqual(cpu.shape.computeClass, .generalPurpose)
    }

    func testAllFieldsSet() throws {
        var body = with(cpuBody, "computeClass", "performance")
        body = with(body, "qos", "best-effort")
        body = with(body, "gpuCount", 0)
        body = with(body, "replicas", 1000)
        body = with(body, "region", "cn-beijing")
        body = with(body, "allOrNothing", false)
        body = with(body, "leaseSeconds", 10)
        body = with(body, "queue", true)
        body = with(body, "queueTimeoutSeconds", 86400)
        let request = try AllocationRequest.parse(body)
        XCTAssertEqual(request.shape.computeClass, .performance)
        XCTAssertEqual(request.shape.qos, .bestEffort)
        XCTAssertEqual(request.replicas, 1000)
        XCTAssertEqual(request.region, "cn-beijing")
        XCTAssertFalse(request.allOrNothing)
        XCTAssertEqual(request.leaseSeconds, 10)
        XCTAssertTrue(request.queue)
        XCTAssertEqual(request.queueTimeoutSeconds, 86400)
    }

    func testComputeClassRequiredAndEnumerated() {
        assertError("computeClass", "is required") { try AllocationRequest.parse(with(cpuBody, "computeClass", nil)) }
        assertError("computeClass", "one of") { try AllocationRequest.parse(with(cpuBody, "computeClass", "tpu")) }
        assertError("computeClass", "one of") { try AllocationRequest.parse(with(cpuBody, "computeClass", 1)) }
        assertError("computeClass", "null") { try AllocationRequest.parse(with(cpuBody, "computeClass", nil as JSONValue)) }
    }

    func testQoS() {
        assertError("qos", "one of") { try AllocationRequest.parse(with(cpuBody, "qos", "gold")) }
        assertError("qos") { try AllocationRequest.parse(with(cpuBody, "qos", ["default"])) }
    }

    func testGPUSeriesRules() throws {
        assertError("gpuSeries", "required") { try AllocationRequest.parse(with(gpuBody, "gpuSeries", nil)) }
        assertError("gpuSeries", "empty") { try AllocationRequest.parse(with(gpuBody, "gpuSeries", [])) }
        assertError("gpuSeries[1]", "empty") { try AllocationRequest.parse(with(gpuBody, "gpuSeries", ["A10", ""])) }
        assertError("gpuSeries[0]", "string") { try AllocationRequest.parse(with(gpuBody, "gpuSeries", [10])) }
        assertError("gpuSeries[1]", "duplicate") { try AllocationRequest.parse(with(gpuBody, "gpuSeries", ["A10", "A10"])) }
        assertError("gpuSeries", "array") { try AllocationRequest.parse(with(gpuBody, "gpuSeries", "A10")) }
        assertError("gpuSeries", "only allowed") { try AllocationRequest.parse(with(cpuBody, "gpuSeries", ["T4"])) }
        // model instead of series
        let modelOnly = with(with(gpuBody, "gpuSeries", nil), "model", ["parameters": "7B", "precision": "fp16"])
        let request = try AllocationRequest.parse(modelOnly)
        XCTAssertEqual(request.shape.gpuSeries, [])
        XCTAssertNotNil(request.shape.requiredGPUMemoryGiB)
        // both: series filter and memory
        let both = try AllocationRequest.parse(with(gpuBody, "model", ["parameters": 7e9, "precision": "int8"]))
        XCTAssertEqual(both.shape.gpuSeries, ["A10", "L20"])
        XCTAssertNotNil(both.shape.requiredGPUMemoryGiB)
    }

    func testGPUCountRules() throws {
        XCTAssertEqual(try AllocationRequest.parse(with(gpuBody, "gpuCount", 8)).shape.gpuCount, 8)
        XCTAssertEqual(try AllocationRequest.parse(with(gpuBody, "gpuCount", 2.0)).shape.gpuCount, 2)
        assertError("gpuCount", "at least 1") { try AllocationRequest.parse(with(gpuBody, "gpuCount", 0)) }
        assertError("gpuCount", "at least 0") { try AllocationRequest.parse(with(gpuBody, "gpuCount", -1)) }
        assertError("gpuCount", "integer") { try AllocationRequest.parse(with(gpuBody, "gpuCount", 1.5)) }
        assertError("gpuCount", "integer") { try AllocationRequest.parse(with(gpuBody, "gpuCount", "1")) }
        assertError("gpuCount", "at most") { try AllocationRequest.parse(with(gpuBody, "gpuCount", 1e300)) }
        assertError("gpuCount", "0 or absent") { try AllocationRequest.parse(with(cpuBody, "gpuCount", 1)) }
        XCTAssertEqual(try AllocationRequest.parse(with(cpuBody, "gpuCount", 0)).shape.gpuCount, 0)
    }

    func testCPUAndMemory() {
        for key in ["cpu", "memoryGiB"] {
            assertError(key, "is required") { try AllocationRequest.parse(with(cpuBody, key, nil)) }
            assertError(key, "greater than 0") { try AllocationRequest.parse(with(cpuBody, key, 0)) }
            assertError(key, "greater than 0") { try AllocationRequest.parse(with(cpuBody, key, -4)) }
            assertError(key, "number") { try AllocationRequest.parse(with(cpuBody, key, "4")) }
            assertError(key, "at most") { try AllocationRequest.parse(with(cpuBody, key, 100_001)) }
            assertError(key, "finite") { try AllocationRequest.parse(with(cpuBody, key, 1e300)) }
            assertError(key, "null") { try AllocationRequest.parse(with(cpuBody, key, JSONValue.null)) }
        }
        XCTAssertEqual(try AllocationRequest.parse(with(cpuBody, "cpu", 0.25)).shape.cpu, 0.25)
    }

    func testReplicas() {
        assertError("replicas", "at least 1") { try AllocationRequest.parse(with(cpuBody, "replicas", 0)) }
        assertError("replicas", "at most 1000") { try AllocationRequest.parse(with(cpuBody, "replicas", 1001)) }
        assertError("replicas", "integer") { try AllocationRequest.parse(with(cpuBody, "replicas", 2.5)) }
        assertError("replicas", "integer") { try AllocationRequest.parse(with(cpuBody, "replicas", true)) }
    }

    func testRegionAndInstanceType() {
        assertError("region", "must match") { try AllocationRequest.parse(with(cpuBody, "region", "CN-Beijing")) }
        assertError("region", "must match") { try AllocationRequest.parse(with(cpuBody, "region", "1abc")) }
        assertError("region", "empty") { try AllocationRequest.parse(with(cpuBody, "region", "")) }
        assertError("region", "63") { try AllocationRequest.parse(with(cpuBody, "region", .string(String(repeating: "a", count: 64)))) }
        assertError("instanceType", "empty") { try AllocationRequest.parse(with(cpuBody, "instanceType", "")) }
        assertError("instanceType", "string") { try AllocationRequest.parse(with(cpuBody, "instanceType", 5)) }
    }

    func testRegionAndPlacementTogetherRejected() {
        let body = with(with(cpuBody, "region", "cn-beijing"), "placement", ["units": [["regions": ["*"]]]])
        assertError("placement", "region") { try AllocationRequest.parse(body) }
    }

    func testPlacementRules() throws {
        func parse(_ placement: JSONValue) throws -> AllocationRequest {
            try AllocationRequest.parse(with(cpuBody, "placement", placement))
        }
        let spread = try parse(["strategy": "spread", "units": [["selector": ["kind": "on-premises", "labels": ["zone": "a"]]], ["regions": ["*"], "max": 2]]])
        XCTAssertEqual(spread.placement, PlacementPolicy(strategy: .spread, units: [
            PlacementUnit(selector: RegionSelector(kind: .onPremises, labels: ["zone": "a"])),
            PlacementUnit(regions: ["*"], max: 2),
        ]))
        XCTAssertEqual(try parse(["units": [["regions": ["a"]]]]).placement?.strategy, .prefer)
        XCTAssertEqual(try parse(["units": [["selector": [:]]]]).placement?.units, [PlacementUnit(selector: RegionSelector())])

        assertError("placement.strategy", "one of") { try parse(["strategy": "random", "units": [["regions": ["a"]]]]) }
        assertError("placement.units", "required") { try parse(["strategy": "prefer"]) }
        assertError("placement.units", "empty") { try parse(["units": []]) }
        assertError("placement.units", "at most 16") { try parse(["units": .array(Array(repeating: ["regions": ["*"]], count: 17))]) }
        XCTAssertNoThrow(try parse(["units": .array(Array(repeating: ["regions": ["*"]], count: 16))]))
        assertError("placement.units[1]", "regions or selector") { try parse(["units": [["regions": ["a"]], ["max": 2]]]) }
        assertError("placement.units[0].max", "at least 1") { try parse(["units": [["regions": ["a"], "max": 0]]]) }
        assertError("placement.units[1].max", "integer") { try parse(["units": [["regions": ["a"]], ["regions": ["b"], "max": 1.5]]]) }
        assertError("placement.units[0].regions[1]", "must match") { try parse(["units": [["regions": ["a", "Bad_Id"]]]]) }
        assertError("placement.units[0].regions", "empty") { try parse(["units": [["regions": []]]]) }
        assertError("placement.units[0].regions[1]", "duplicate") { try parse(["units": [["regions": ["a", "a"]]]]) }
        assertError("placement.units[0].selector.kind", "one of") { try parse(["units": [["selector": ["kind": "cloud"]]]]) }
        assertError("placement.units[0].selector.labels.app", "string") { try parse(["units": [["selector": ["labels": ["app": 1]]]]]) }
        assertError("placement.units[0]", "object") { try parse(["units": ["a"]]) }
        assertError("placement", "object") { try parse("prefer") }
    }

    func testModelRules() throws {
        func parse(_ model: JSONValue) throws -> AllocationRequest {
            try AllocationRequest.parse(with(gpuBody, "model", model))
        }
        assertError("model", "only allowed") { try AllocationRequest.parse(with(cpuBody, "model", ["parameters": "7B", "precision": "fp16"])) }
        assertError("model.parameters", "required") { try parse(["precision": "fp16"]) }
        assertError("model.precision", "required") { try parse(["parameters": "7B"]) }
        assertError("model.precision", "one of") { try parse(["parameters": "7B", "precision": "fp64"]) }
        for bad: JSONValue in ["7X", "", "B", "-7B", "abc", 0, -1, true, "1e3B", "nan", "inf", 1e300] {
            assertError("model.parameters") { try parse(["parameters": bad, "precision": "fp16"]) }
        }
        assertError("model.usableFraction", "at least 0.01") { try parse(["parameters": "7B", "precision": "fp16", "usableFraction": 0]) }
        // A vanishing fraction would divide the memory need to infinity (a 500 once).
        assertError("model.usableFraction", "at least 0.01") { try parse(["parameters": "7B", "precision": "fp16", "usableFraction": 5e-324]) }
        assertError("model.usableFraction", "at most 1") { try parse(["parameters": "7B", "precision": "fp16", "usableFraction": 1.1]) }
        XCTAssertEqual(try parse(["parameters": "7B", "precision": "fp16", "usableFraction": 1]).model?.usableFraction, 1)
        assertError("model.contextLength", "integer") { try parse(["parameters": "7B", "precision": "fp16", "contextLength": 1.5]) }
        assertError("model.layers", "at least 1") { try parse(["parameters": "7B", "precision": "fp16", "layers": 0]) }
        assertError("model.hiddenSize", "integer") { try parse(["parameters": "7B", "precision": "fp16", "hiddenSize": "4096"]) }
        assertError("model.batchSize", "at least 1") { try parse(["parameters": "7B", "precision": "fp16", "batchSize": 0]) }
        assertError("model.kvCacheGiB", "at least 0") { try parse(["parameters": "7B", "precision": "fp16", "kvCacheGiB": -1]) }
        assertError("model.name", "unknown field") { try parse(["parameters": "7B", "precision": "fp16", "name": "llama"]) }
        let full = try parse(["parameters": "13.5B", "precision": "bf16", "contextLength": 4096, "layers": 40,
                              "hiddenSize": 5120, "batchSize": 2, "kvCacheGiB": 3, "usableFraction": 0.8])
        XCTAssertEqual(full.model, ModelSpec(parameters: 13.5e9, precision: .bf16, contextLength: 4096, layers: 40,
                                             hiddenSize: 5120, batchSize: 2, kvCacheGiB: 3, usableFraction: 0.8))
        XCTAssertEqual(full.shape.requiredGPUMemoryGiB!, (13.5e9 * 2 / 1_073_741_824 + 3) / 0.8, accuracy: 1e-9)
    }

    func testLeaseAndQueue() {
        assertError("leaseSeconds", "at least 10") { try AllocationRequest.parse(with(cpuBody, "leaseSeconds", 9)) }
        assertError("leaseSeconds", "at most 86400") { try AllocationRequest.parse(with(cpuBody, "leaseSeconds", 86401)) }
        assertError("queueTimeoutSeconds", "at least 1") { try AllocationRequest.parse(with(cpuBody, "queueTimeoutSeconds", 0)) }
        assertError("queueTimeoutSeconds", "at most 86400") { try AllocationRequest.parse(with(cpuBody, "queueTimeoutSeconds", 86401)) }
        assertError("queue", "boolean") { try AllocationRequest.parse(with(cpuBody, "queue", "true")) }
        assertError("allOrNothing", "boolean") { try AllocationRequest.parse(with(cpuBody, "allOrNothing", 1)) }
    }

    func testLabels() throws {
        XCTAssertEqual(try AllocationRequest.parse(with(cpuBody, "labels", ["a": "", "topology.kubernetes.io/zone": "x"])).labels,
                       ["a": "", "topology.kubernetes.io/zone": "x"])
        assertError("labels.app", "string") { try AllocationRequest.parse(with(cpuBody, "labels", ["app": 1])) }
        assertError("labels.app", "null") { try AllocationRequest.parse(with(cpuBody, "labels", ["app": nil])) }
        assertError("labels.app", "63") { try AllocationRequest.parse(with(cpuBody, "labels", ["app": .string(String(repeating: "v", count: 64))])) }
        XCTAssertNoThrow(try AllocationRequest.parse(with(cpuBody, "labels", ["app": .string(String(repeating: "v", count: 63))])))
        assertError("labels.", "key") { try AllocationRequest.parse(with(cpuBody, "labels", ["": "x"])) }
        let longKey = String(repeating: "k", count: 254)
        assertError("labels.\(longKey)", "key") { try AllocationRequest.parse(with(cpuBody, "labels", .object([longKey: "x"]))) }
        assertError("labels", "object") { try AllocationRequest.parse(with(cpuBody, "labels", ["app"])) }
    }

    func testUnknownFieldsAtEveryLevel() {
        assertError("color", "unknown field") { try AllocationRequest.parse(with(cpuBody, "color", "red")) }
        let misspelled = with(with(gpuBody, "gpuSeries", nil), "gpuSerie", ["T4"])
        XCTAssertEqual(failingFields { try AllocationRequest.parse(misspelled) }, ["gpuSerie", "gpuSeries"])
        assertError("placement.order", "unknown field") {
            try AllocationRequest.parse(with(cpuBody, "placement", ["units": [["regions": ["*"]]], "order": "x"]))
        }
        assertError("placement.units[0].priority", "unknown field") {
            try AllocationRequest.parse(with(cpuBody, "placement", ["units": [["regions": ["*"], "priority": 2]]]))
        }
        // `weight` is known now: it needs a spread, on every unit.
        assertError("placement.units", "spread") {
            try AllocationRequest.parse(with(cpuBody, "placement", ["units": [["regions": ["*"], "weight": 2]]]))
        }
        assertError("placement.units[0].selector.zone", "unknown field") {
            try AllocationRequest.parse(with(cpuBody, "placement", ["units": [["selector": ["zone": "a"]]]]))
        }
    }

    func testSeveralErrorsAtOnce() {
        let body = json("""
        {"computeClass": "gpu", "gpuCount": 0, "cpu": -1, "replicas": 5000, "region": "X",
         "leaseSeconds": 1, "labels": {"a": 1}, "extra": true,
         "placement": {"units": [{"max": 0}]}}
        """)
        XCTAssertEqual(failingFields { try AllocationRequest.parse(body) }, [
            "extra", "gpuCount", "gpuSeries", "labels.a", "leaseSeconds", "memoryGiB", "cpu", "placement",
            "placement.units[0]", "placement.units[0].max", "region", "replicas",
        ].sorted())
    }

    func testNotAnObject() {
        assertError("", "object") { try AllocationRequest.parse([1, 2]) }
        assertError("", "object") { try AllocationRequest.parse(.null) }
    }

    func testCanonicalJSONRoundTrips() throws {
        let request = try AllocationRequest.parse(json("""
        {"computeClass": "gpu", "gpuSeries": ["T4"], "cpu": 4, "memoryGiB": 16, "replicas": 3,
         "model": {"parameters": "7B", "precision": "fp16", "contextLength": 4096},
         "placement": {"units": [{"regions": ["a"], "max": 2}, {"selector": {"kind": "serverless"}}]},
         "labels": {"b": "2", "a": "1"}}
        """))
        let bytes = request.canonicalJSON()
        XCTAssertEqual(try JSONDecoder().decode(AllocationRequest.self, from: Data(bytes)), request)
        XCTAssertEqual(bytes, request.canonicalJSON())
        XCTAssertEqual(try JSONDecoder().decode(AllocationRequest.self, from: JSONEncoder().encode(request)), request)
    }
}

final class ReplicaChangeAndRenewTests: XCTestCase {
    func testReplicaChange() throws {
        XCTAssertEqual(try ReplicaChange.parse(["replicas": 3]), ReplicaChange(replicas: 3))
        assertError("replicas", "required") { try ReplicaChange.parse([:]) }
        assertError("replicas", "at least 1") { try ReplicaChange.parse(["replicas": 0]) }
        assertError("replicas", "at most 1000") { try ReplicaChange.parse(["replicas": 1001]) }
        assertError("replicas", "integer") { try ReplicaChange.parse(["replicas": 1.5]) }
        assertError("other", "unknown field") { try ReplicaChange.parse(["replicas": 1, "other": 1]) }
        assertError("", "object") { try ReplicaChange.parse(3) }
    }

    func testRenew() throws {
        XCTAssertEqual(try RenewRequest.parse([:]), RenewRequest())
        XCTAssertThrowsError(try RenewRequest.parse(.null), "null is not an object")
        XCTAssertEqual(try RenewRequest.parse(["leaseSeconds": 900]), RenewRequest(leaseSeconds: 900))
        assertError("leaseSeconds", "at least 10") { try RenewRequest.parse(["leaseSeconds": 5]) }
        assertError("leaseSeconds", "at most 86400") { try RenewRequest.parse(["leaseSeconds": 100_000]) }
        assertError("lease", "unknown field") { try RenewRequest.parse(["lease": 100]) }
    }
}
