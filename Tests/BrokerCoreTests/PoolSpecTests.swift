import JSON
import XCTest
@testable import BrokerCore

final class PoolSpecTests: XCTestCase {
    let gpu = json("""
    {"computeClass": "gpu", "gpuSeries": "T4", "gpuMemoryGiB": 16, "gpusPerInstance": 1, "cpu": 8,
     "memoryGiB": 32, "instanceType": "ecs.gn6i-c8g1.2xlarge", "capacity": 10, "pricePerHour": 1.2}
    """)
    let cpu = json(#"{"computeClass": "general-purpose", "cpu": 4, "memoryGiB": 8, "instanceType": "ecs.g7.xlarge", "capacity": 0, "pricePerHour": 0}"#)

    func parse(_ body: JSONValue) throws -> Pool { try PoolSpec.parse(body, regionId: "cn-beijing", poolId: "t4-small") }

    func testGPUPoolWithDefaults() throws {
        XCTAssertEqual(try parse(gpu), Pool(
            id: "t4-small", regionId: "cn-beijing", computeClass: .gpu, qos: [.default, .bestEffort], gpuSeries: "T4",
            gpuMemoryGiB: 16, gpusPerInstance: 1, cpu: 8, memoryGiB: 32, instanceType: "ecs.gn6i-c8g1.2xlarge",
            capacity: 10, pricePerHour: 1.2, deferScaleInSeconds: 600))
    }

    func testCPUPool() throws {
        let pool = try parse(with(with(cpu, "qos", ["best-effort"]), "deferScaleInSeconds", 0))
        XCTAssertEqual(pool.qos, [.bestEffort])
        XCTAssertNil(pool.gpuSeries)
        XCTAssertEqual(pool.capacity, 0)
        XCTAssertEqual(pool.deferScaleInSeconds, 0)
    }

    func testGPUFieldsRequiredForGPUAndRejectedOtherwise() {
        for key in ["gpuSeries", "gpuMemoryGiB", "gpusPerInstance"] {
            assertError(key, "required") { try parse(with(gpu, key, nil)) }
        }
        assertError("gpuSeries", "only allowed") { try parse(with(cpu, "gpuSeries", "T4")) }
        assertError("gpuMemoryGiB", "only allowed") { try parse(with(cpu, "gpuMemoryGiB", 16)) }
        assertError("gpusPerInstance", "only allowed") { try parse(with(cpu, "gpusPerInstance", 1)) }
        assertError("gpuMemoryGiB", "greater than 0") { try parse(with(gpu, "gpuMemoryGiB", 0)) }
        assertError("gpusPerInstance", "at least 1") { try parse(with(gpu, "gpusPerInstance", 0)) }
        assertError("gpusPerInstance", "integer") { try parse(with(gpu, "gpusPerInstance", 1.5)) }
        assertError("gpuSeries", "string") { try parse(with(gpu, "gpuSeries", ["T4"])) }
    }

    func testRanges() {
        assertError("computeClass", "required") { try parse(with(cpu, "computeClass", nil)) }
        assertError("cpu", "greater than 0") { try parse(with(cpu, "cpu", 0)) }
        assertError("memoryGiB", "at most") { try parse(with(cpu, "memoryGiB", 100_001)) }
        assertError("instanceType", "required") { try parse(with(cpu, "instanceType", nil)) }
        assertError("instanceType", "empty") { try parse(with(cpu, "instanceType", "")) }
        assertError("capacity", "at least 0") { try parse(with(cpu, "capacity", -1)) }
        assertError("capacity", "at most 1000000") { try parse(with(cpu, "capacity", 1_000_001)) }
        assertError("capacity", "integer") { try parse(with(cpu, "capacity", 2.5)) }
        assertError("capacity", "required") { try parse(with(cpu, "capacity", nil)) }
        assertError("pricePerHour", "at least 0") { try parse(with(cpu, "pricePerHour", -0.01)) }
        assertError("pricePerHour", "required") { try parse(with(cpu, "pricePerHour", nil)) }
        assertError("deferScaleInSeconds", "at most 86400") { try parse(with(cpu, "deferScaleInSeconds", 86401)) }
        assertError("deferScaleInSeconds", "at least 0") { try parse(with(cpu, "deferScaleInSeconds", -1)) }
    }

    func testQoS() {
        assertError("qos", "empty") { try parse(with(cpu, "qos", [])) }
        assertError("qos[1]", "one of") { try parse(with(cpu, "qos", ["default", "gold"])) }
        assertError("qos[1]", "duplicate") { try parse(with(cpu, "qos", ["default", "default"])) }
        assertError("qos", "array") { try parse(with(cpu, "qos", "default")) }
    }

    func testPathIdsAndBodyIds() throws {
        assertError("poolId", "must match") { try PoolSpec.parse(cpu, regionId: "cn-beijing", poolId: "T4_small") }
        assertError("regionId", "must match") { try PoolSpec.parse(cpu, regionId: "", poolId: "p") }
        XCTAssertNoThrow(try parse(with(with(cpu, "id", "t4-small"), "regionId", "cn-beijing")))
        assertError("id", "path") { try parse(with(cpu, "id", "other")) }
        assertError("regionId", "path") { try parse(with(cpu, "regionId", "other")) }
    }

    func testUnknownAndSeveral() {
        assertError("gpuModel", "unknown field") { try parse(with(gpu, "gpuModel", "T4")) }
        let bad = json(#"{"computeClass": "gpu", "cpu": 0, "capacity": -5, "x": 1}"#)
        XCTAssertEqual(failingFields { try parse(bad) }, [
            "capacity", "cpu", "gpuMemoryGiB", "gpuSeries", "gpusPerInstance", "instanceType", "memoryGiB", "pricePerHour", "x",
        ])
    }
}
