import BrokerCore
import Foundation
import TestSupport
import XCTest

final class InventoryAPITests: XCTestCase {
    var broker: TestBroker!

    override func setUp() async throws {
        broker = try TestBroker()
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func testFirstRegionBecomesPrimaryAndPromotionDemotesThePrevious() async throws {
        let first = try await broker.region("cn-beijing")
        XCTAssertEqual(first.json["primary"], .bool(true))
        XCTAssertEqual(first.header("Location"), "/v1/regions/cn-beijing")
        try await broker.region("cn-hangzhou", primary: true)
        let regions = try await broker.call("GET", "/v1/regions", token: broker.adminToken).json["regions"]!.array
        XCTAssertEqual(regions.map { $0["id"]!.string! }, ["cn-beijing", "cn-hangzhou"])
        XCTAssertEqual(regions.map { $0["primary"] }, [.bool(false), .bool(true)])
    }

    func testRegisteringAnExistingRegionIsAConflict() async throws {
        try await broker.region("cn-beijing")
        let again = try await broker.call(
            "POST", "/v1/admin/regions", token: broker.adminToken,
            json: ["id": "cn-beijing", "vpcId": "v", "vSwitchIds": ["s"], "securityGroupId": "g"])
        XCTAssertEqual(again.status, 409)
        XCTAssertEqual(again.json["code"], "conflict")
        XCTAssertEqual(again.header("Content-Type"), "application/problem+json")
    }

    func testInvalidRegionIsRejectedWithFieldPathsAndNothingChanges() async throws {
        let response = try await broker.call(
            "POST", "/v1/admin/regions", token: broker.adminToken,
            json: ["id": "Bad_Id", "vpcId": "v", "vSwitchIds": [], "securityGroupId": "g", "kind": "cloud", "extra": 1])
        XCTAssertEqual(response.status, 422)
        XCTAssertEqual(response.json["code"], "validation_failed")
        let fields = Set(response.json["errors"]!.array.compactMap { $0["field"]?.string })
        XCTAssertTrue(fields.isSuperset(of: ["id", "vSwitchIds", "kind", "extra"]), "\(fields)")
        let list = try await broker.call("GET", "/v1/regions", token: broker.adminToken)
        XCTAssertEqual(list.json["regions"]?.array.count, 0)
    }

    func testMalformedJSONIs400AndWrongContentTypeIs415() async throws {
        let malformed = try await broker.call(
            "POST", "/v1/admin/regions", token: broker.adminToken, body: Array("{\"id\":".utf8),
            headers: ["Content-Type": "application/json"])
        XCTAssertEqual(malformed.status, 400)
        XCTAssertEqual(malformed.json["code"], "invalid_request")
        let form = try await broker.call(
            "POST", "/v1/admin/regions", token: broker.adminToken, body: Array("id=x".utf8),
            headers: ["Content-Type": "application/x-www-form-urlencoded"])
        XCTAssertEqual(form.status, 415)
        XCTAssertEqual(form.json["code"], "unsupported_media_type")
    }

    func testAuthentication() async throws {
        let none = try await broker.call("GET", "/v1/regions")
        XCTAssertEqual(none.status, 401)
        XCTAssertEqual(none.json["code"], "unauthorized")
        let unknown = try await broker.call("GET", "/v1/regions", token: "nope")
        XCTAssertEqual(unknown.status, 401)
        let tenant = try await broker.tenant()
        let forbidden = try await broker.call(
            "POST", "/v1/admin/regions", token: tenant.token,
            json: ["id": "x", "vpcId": "v", "vSwitchIds": ["s"], "securityGroupId": "g"])
        XCTAssertEqual(forbidden.status, 403)
        XCTAssertEqual(forbidden.json["code"], "forbidden")
        let read = try await broker.call("GET", "/v1/regions", token: tenant.token)
        XCTAssertEqual(read.status, 200)
        let health = try await broker.call("GET", "/healthz", headers: ["X-Request-Id": "trace-123"])
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(health.header("X-Request-Id"), "trace-123", "a client's request id is echoed")
        XCTAssertNotNil(none.header("X-Request-Id"), "every answer carries a request id")
    }

    func testHealthzAnswersWithARequestId() async throws {
        let health = try await broker.call("GET", "/healthz")
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(health.text, #"{"status":"ok"}"#)
        XCTAssertEqual(health.header("Content-Type"), "application/json")
        // A new id is a UUID (version 8: a per-process random prefix and a counter).
        let id = try XCTUnwrap(health.header("X-Request-Id"))
        let uuid = /[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/
        XCTAssertNotNil(id.wholeMatch(of: uuid), id)
        let again = try await broker.call("GET", "/healthz")
        let second = try XCTUnwrap(again.header("X-Request-Id"))
        XCTAssertNotNil(second.wholeMatch(of: uuid), second)
        XCTAssertNotEqual(second, id)
        let notSane = try await broker.call("GET", "/healthz", headers: ["X-Request-Id": String(repeating: "x", count: 129)])
        XCTAssertNotNil(notSane.header("X-Request-Id")?.wholeMatch(of: uuid), "a 129-character id is replaced")
        let head = try await broker.call("HEAD", "/healthz", headers: ["X-Request-Id": "probe-1"])
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.body, [])
        XCTAssertEqual(head.header("X-Request-Id"), "probe-1")
        let wrong = try await broker.call("POST", "/healthz")
        XCTAssertEqual(wrong.status, 405)
        XCTAssertEqual(wrong.header("Allow"), "GET")
        XCTAssertEqual(wrong.json["code"], "method_not_allowed")
    }

    func testTenantTokenIsShownOnceAndStoredOnlyAsAHash() async throws {
        let tenant = try await broker.tenant("platform", quota: ["gpus": 8])
        let list = try await broker.call("GET", "/v1/admin/tenants", token: broker.adminToken)
        XCTAssertEqual(list.status, 200)
        XCTAssertFalse(list.text.contains(tenant.token))
        XCTAssertEqual(list.json["tenants"]?[0]?["quota"]?["gpus"], 8)
        XCTAssertNil(list.json["tenants"]?[0]?["token"])
    }

    func testPrimaryRegionCannotBeDeletedWhileOthersExist() async throws {
        try await broker.region("a")
        try await broker.region("b")
        let refused = try await broker.call("DELETE", "/v1/admin/regions/a", token: broker.adminToken)
        XCTAssertEqual(refused.status, 409)
        let deleted = try await broker.call("DELETE", "/v1/admin/regions/b", token: broker.adminToken)
        XCTAssertEqual(deleted.status, 204)
        let missing = try await broker.call("GET", "/v1/regions/b", token: broker.adminToken)
        XCTAssertEqual(missing.status, 404)
        XCTAssertEqual(missing.json["code"], "not_found")
    }

    func testReplacingARegionKeepsExactlyOnePrimary() async throws {
        try await broker.region("a")
        try await broker.region("b")
        let promote = try await broker.call(
            "PUT", "/v1/admin/regions/b", token: broker.adminToken,
            json: ["primary": true, "vpcId": "v2", "vSwitchIds": ["s1", "s2"], "securityGroupId": "g2", "state": "cordoned"])
        XCTAssertEqual(promote.status, 200, promote.text)
        XCTAssertEqual(promote.json["vSwitchIds"], ["s1", "s2"])
        XCTAssertEqual(promote.json["state"], "cordoned")
        let a = try await broker.call("GET", "/v1/regions/a", token: broker.adminToken)
        XCTAssertEqual(a.json["primary"], .bool(false))
        let mismatch = try await broker.call(
            "PUT", "/v1/admin/regions/b", token: broker.adminToken,
            json: ["id": "c", "primary": true, "vpcId": "v", "vSwitchIds": ["s"], "securityGroupId": "g"])
        XCTAssertEqual(mismatch.status, 422)
    }

    func testConcurrentPrimaryRegistrationsEndWithExactlyOnePrimary() async throws {
        let broker = self.broker!
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<12 {
                group.addTask { try await broker.region("r\(index)", primary: true) }
            }
            try await group.waitForAll()
        }
        let regions = try await broker.call("GET", "/v1/regions", token: broker.adminToken).json["regions"]!.array
        XCTAssertEqual(regions.count, 12)
        XCTAssertEqual(regions.filter { $0["primary"] == .bool(true) }.count, 1)
    }

    func testPoolsCreateReplaceAndInventoryShowsUse() async throws {
        try await broker.region("cn-beijing")
        let created = try await broker.pool("cn-beijing", "t4", series: "T4", gpuMemory: 16, capacity: 10, price: 1.2)
        XCTAssertEqual(created.status, 201)
        let replaced = try await broker.pool("cn-beijing", "t4", series: "T4", gpuMemory: 16, capacity: 4, price: 1.2)
        XCTAssertEqual(replaced.status, 200)
        let inventory = try await broker.call("GET", "/v1/regions/cn-beijing/inventory", token: broker.adminToken)
        XCTAssertEqual(inventory.status, 200)
        let pool = inventory.json["pools"]![0]!
        XCTAssertEqual(pool["id"], "t4")
        XCTAssertEqual(pool["capacity"], 4)
        XCTAssertEqual(pool["allocated"], 0)
        XCTAssertEqual(pool["available"], 4)
        XCTAssertEqual(pool["overcommitted"], .bool(false))
        let missing = try await broker.call(
            "PUT", "/v1/admin/regions/nowhere/pools/t4", token: broker.adminToken,
            json: ["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "instanceType": "x", "capacity": 1, "pricePerHour": 0])
        XCTAssertEqual(missing.status, 404)
    }

    func testGPUFieldsAreRequiredForGPUPoolsAndRejectedOtherwise() async throws {
        try await broker.region("a")
        let gpuWithout = try await broker.call(
            "PUT", "/v1/admin/regions/a/pools/p", token: broker.adminToken,
            json: ["computeClass": "gpu", "cpu": 2, "memoryGiB": 4, "instanceType": "x", "capacity": 1, "pricePerHour": 0])
        XCTAssertEqual(gpuWithout.status, 422)
        let cpuWith = try await broker.call(
            "PUT", "/v1/admin/regions/a/pools/p", token: broker.adminToken,
            json: ["computeClass": "general-purpose", "gpuSeries": "T4", "cpu": 2, "memoryGiB": 4, "instanceType": "x",
                   "capacity": 1, "pricePerHour": 0])
        XCTAssertEqual(cpuWith.status, 422)
        let negative = try await broker.call(
            "PUT", "/v1/admin/regions/a/pools/p", token: broker.adminToken,
            json: ["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "instanceType": "x", "capacity": -1, "pricePerHour": 0])
        XCTAssertEqual(negative.status, 422)
    }

    func testInventoryQueryCountsReplicasThatFitInDefaultOrder() async throws {
        try await broker.region("cn-beijing")
        try await broker.region("cn-hangzhou")
        try await broker.region("cn-zhangjiakou")
        try await broker.pool("cn-beijing", "t4", series: "T4", gpuMemory: 16, cpu: 4, memory: 15, capacity: 2, price: 1.3)
        try await broker.pool("cn-hangzhou", "t4", series: "T4", gpuMemory: 16, cpu: 4, memory: 15, capacity: 5, price: 1.5)
        try await broker.pool("cn-zhangjiakou", "t4", series: "T4", gpuMemory: 16, cpu: 4, memory: 15, capacity: 9, price: 1.1)
        try await broker.pool("cn-zhangjiakou", "small", series: "T4", gpuMemory: 16, cpu: 2, memory: 8, capacity: 50, price: 0.5)
        let response = try await broker.call(
            "GET", "/v1/inventory?computeClass=gpu&gpuSeries=T4&gpuCount=1&cpu=4&memoryGiB=15", token: broker.adminToken)
        XCTAssertEqual(response.status, 200, response.text)
        let regions = response.json["regions"]!.array
        // Primary first, then by price: zhangjiakou (1.1) before hangzhou (1.5).
        XCTAssertEqual(regions.map { $0["region"]!.string! }, ["cn-beijing", "cn-zhangjiakou", "cn-hangzhou"])
        XCTAssertEqual(regions.map { $0["availableReplicas"]!.int! }, [2, 9, 5])
        XCTAssertEqual(regions[1]["bestPool"], "t4")
        let missing = try await broker.call("GET", "/v1/inventory?gpuCount=1", token: broker.adminToken)
        XCTAssertEqual(missing.status, 422)
    }

    // Answers are kept per query for the snapshot they came from: another query gets
    // its own answer, and a report shows in the next answer to the same query.
    func testInventoryAnswersFollowTheQueryAndTheLatestReport() async throws {
        try await broker.region("cn-beijing")
        try await broker.pool("cn-beijing", "t4", series: "T4", gpuMemory: 16, cpu: 4, memory: 15, capacity: 2, price: 1.3)
        try await broker.pool("cn-beijing", "small", series: "T4", gpuMemory: 16, cpu: 2, memory: 8, capacity: 50, price: 0.5)
        func available(_ query: String) async throws -> [Int] {
            let response = try await broker.call("GET", "/v1/inventory?" + query, token: broker.adminToken)
            XCTAssertEqual(response.status, 200, response.text)
            return response.json["regions"]!.array.map { $0["availableReplicas"]!.int! }
        }
        let large = "computeClass=gpu&gpuSeries=T4&cpu=4&memoryGiB=15"
        let first = try await available(large)
        let smaller = try await available("computeClass=gpu&gpuSeries=T4&cpu=2&memoryGiB=8")
        let reordered = try await available("memoryGiB=15&cpu=4&gpuSeries=T4&computeClass=gpu")
        XCTAssertEqual([first, smaller, reordered], [[2], [52], [2]])
        let refused = try await broker.call("GET", "/v1/inventory?" + large + "&colour=red", token: broker.adminToken)
        XCTAssertEqual(refused.status, 422)
        try await broker.pool("cn-beijing", "t4", series: "T4", gpuMemory: 16, cpu: 4, memory: 15, capacity: 7, price: 1.3)
        let reported = try await available(large)
        XCTAssertEqual(reported, [7])
    }

    func testUnknownRouteAndMethod() async throws {
        let notFound = try await broker.call("GET", "/v1/nothing", token: broker.adminToken)
        XCTAssertEqual(notFound.status, 404)
        XCTAssertEqual(notFound.json["code"], "not_found")
        let method = try await broker.call("DELETE", "/v1/regions", token: broker.adminToken)
        XCTAssertEqual(method.status, 405)
        XCTAssertEqual(method.json["code"], "method_not_allowed")
        XCTAssertNotNil(method.header("Allow"))
    }
}
