import XCTest
@testable import BrokerCore

final class InventoryQueryTests: XCTestCase {
    func testGPU() throws {
        let shape = try InventoryQuery.parse(["computeClass": "gpu", "gpuSeries": "T4, A10,T4", "cpu": "4", "memoryGiB": "16.5"])
        XCTAssertEqual(shape, ComputeShape(computeClass: .gpu, qos: .default, gpuSeries: ["T4", "A10"], gpuCount: 1, cpu: 4, memoryGiB: 16.5))
        XCTAssertEqual(try InventoryQuery.parse(["computeClass": "gpu", "gpuCount": "4", "cpu": "1", "memoryGiB": "1", "qos": "best-effort"]),
                       ComputeShape(computeClass: .gpu, qos: .bestEffort, gpuCount: 4, cpu: 1, memoryGiB: 1))
        XCTAssertEqual(try InventoryQuery.parse(["computeClass": "gpu", "gpuCount": "0", "cpu": "1", "memoryGiB": "1"]).gpuCount, 0)
    }

    func testCPU() throws {
        XCTAssertEqual(try InventoryQuery.parse(["computeClass": "performance", "cpu": "2", "memoryGiB": "4", "instanceType": "ecs.c7.large"]),
                       ComputeShape(computeClass: .performance, gpuCount: 0, cpu: 2, memoryGiB: 4, instanceType: "ecs.c7.large"))
        // GPU filters on a class without GPUs: accepted (the document allows them), and they match no pool.
        XCTAssertEqual(try InventoryQuery.parse(["computeClass": "performance", "gpuCount": "1", "cpu": "2", "memoryGiB": "4"]).gpuCount, 1)
        XCTAssertEqual(
            try InventoryQuery.parse(["computeClass": "performance", "gpuSeries": "T4", "cpu": "2", "memoryGiB": "4"]).gpuSeries, ["T4"])
    }

    func testErrors() {
        let base = ["computeClass": "gpu", "cpu": "4", "memoryGiB": "16"]
        func parse(_ changes: [String: String?]) throws -> ComputeShape {
            var p = base
            for (k, v) in changes { p[k] = v }
            return try InventoryQuery.parse(p)
        }
        assertError("computeClass", "required") { try parse(["computeClass": nil]) }
        assertError("computeClass", "one of") { try parse(["computeClass": "GPU"]) }
        assertError("cpu", "required") { try parse(["cpu": nil]) }
        assertError("cpu", "number") { try parse(["cpu": "four"]) }
        assertError("cpu", "number") { try parse(["cpu": ""]) }
        assertError("cpu", "finite") { try parse(["cpu": "inf"]) }
        assertError("cpu", "finite") { try parse(["cpu": "nan"]) }
        assertError("memoryGiB", "greater than 0") { try parse(["memoryGiB": "0"]) }
        assertError("gpuCount", "integer") { try parse(["gpuCount": "1.5"]) }
        assertError("gpuCount", "at least 0") { try parse(["gpuCount": "-1"]) }
        assertError("gpuSeries", "non-empty") { try parse(["gpuSeries": "T4,,A10"]) }
        assertError("gpuSeries", "non-empty") { try parse(["gpuSeries": ""]) }
        assertError("qos", "one of") { try parse(["qos": "gold"]) }
        assertError("region", "unknown field") { try parse(["region": "cn-beijing"]) }
        XCTAssertEqual(failingFields { try InventoryQuery.parse(["gpuCount": "x", "foo": "1"]) },
                       ["computeClass", "cpu", "foo", "gpuCount", "memoryGiB"])
    }
}
