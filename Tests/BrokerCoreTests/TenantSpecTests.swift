import XCTest
@testable import BrokerCore

final class TenantSpecTests: XCTestCase {
    func testCreate() throws {
        XCTAssertEqual(try TenantSpec.parse(["name": "team-a"]), TenantSpec(name: "team-a"))
        XCTAssertEqual(try TenantSpec.parse(["name": "team-a", "quota": ["gpus": 8, "cpu": 64.5, "memoryGiB": 256, "instances": 10]]),
                       TenantSpec(name: "team-a", quota: TenantQuota(gpus: 8, cpu: 64.5, memoryGiB: 256, instances: 10)))
        XCTAssertEqual(try TenantSpec.parse(["name": "t", "quota": [:]]).quota, TenantQuota())
        XCTAssertEqual(try TenantSpec.parse(["name": "t", "quota": ["spendPerMonth": 250.5, "gpuHoursPerMonth": 0]]).quota,
                       TenantQuota(spendPerMonth: 250.5, gpuHoursPerMonth: 0))
        assertError("name", "required") { try TenantSpec.parse([:]) }
        assertError("name", "empty") { try TenantSpec.parse(["name": ""]) }
        assertError("name", "blank") { try TenantSpec.parse(["name": "   "]) }
        assertError("name", "100") { try TenantSpec.parse(["name": .string(String(repeating: "n", count: 101))]) }
        XCTAssertNoThrow(try TenantSpec.parse(["name": .string(String(repeating: "n", count: 100))]))
    }

    func testQuotaRules() {
        assertError("quota.gpus", "integer") { try TenantSpec.parse(["name": "t", "quota": ["gpus": 1.5]]) }
        assertError("quota.gpus", "at least 0") { try TenantSpec.parse(["name": "t", "quota": ["gpus": -1]]) }
        assertError("quota.instances", "integer") { try TenantSpec.parse(["name": "t", "quota": ["instances": "3"]]) }
        assertError("quota.cpu", "at least 0") { try TenantSpec.parse(["name": "t", "quota": ["cpu": -0.5]]) }
        assertError("quota.spendPerMonth", "at least 0") { try TenantSpec.parse(["name": "t", "quota": ["spendPerMonth": -1]]) }
        assertError("quota.gpuHoursPerMonth", "number") { try TenantSpec.parse(["name": "t", "quota": ["gpuHoursPerMonth": "9"]]) }
        assertError("quota.memoryGiB", "number") { try TenantSpec.parse(["name": "t", "quota": ["memoryGiB": true]]) }
        assertError("quota.disk", "unknown field") { try TenantSpec.parse(["name": "t", "quota": ["disk": 1]]) }
        assertError("quota", "object") { try TenantSpec.parse(["name": "t", "quota": 5]) }
        assertError("token", "unknown field") { try TenantSpec.parse(["name": "t", "token": "x"]) }
    }

    func testPatch() throws {
        XCTAssertEqual(try TenantSpec.parsePatch([:]), TenantSpec())
        XCTAssertEqual(try TenantSpec.parsePatch(["quota": ["gpus": 0]]), TenantSpec(quota: TenantQuota(gpus: 0)))
        XCTAssertEqual(failingFields { try TenantSpec.parsePatch(["name": "", "quota": ["gpus": -1, "cpu": "x"]]) },
                       ["name", "quota.cpu", "quota.gpus"])
    }

    func testAPatchedQuotaIsAMergePatch() throws {
        XCTAssertEqual(try TenantSpec.parsePatch(["quota": ["spendPerMonth": 100, "gpus": .null]]),
                       TenantSpec(quota: TenantQuota(spendPerMonth: 100), removedLimits: ["gpus"]))
        assertError("quota.gpus", "must not be null") { try TenantSpec.parse(["name": "t", "quota": ["gpus": .null]]) }
    }
}
