import BrokerCore
import Foundation
import JSON
import TestSupport
import XCTest

/// Issue 31: every resource a tenant can create has a limit (`ResourceLimits`), refused
/// with a problem naming it, and the refusal changes nothing. Streams, webhook endpoints
/// and sessions are in `HostileTenantTests`; policies and pending allocations here.
final class TenantLimitTests: XCTestCase {
    var broker: TestBroker!

    override func tearDown() async throws {
        await broker?.stop()
    }

    func assertLimitProblem(_ response: TestBroker.Response, _ status: Int, _ name: String, _ limit: Int, line: UInt = #line) {
        XCTAssertEqual(response.status, status, response.text, line: line)
        XCTAssertEqual(response.header("Content-Type"), "application/problem+json", line: line)
        XCTAssertEqual(response.json["code"], "limit_exceeded", line: line)
        XCTAssertEqual(response.json["limitName"]?.stringValue, name, line: line)
        XCTAssertEqual(response.json["limit"], .number(Double(limit)), line: line)
    }

    /// Another tenant has a limit of its own, and deleting one makes room again.
    func assertRoomElsewhereAndAfterDeleting(
        status: Int, other: () async throws -> TestBroker.Response, delete path: String, token: String,
        again: () async throws -> TestBroker.Response, line: UInt = #line
    ) async throws {
        let others = try await other()
        XCTAssertEqual(others.status, status, "another tenant has its own limit: \(others.text)", line: line)
        let deleted = try await broker.call("DELETE", path, token: token)
        XCTAssertLessThan(deleted.status, 300, deleted.text, line: line)
        let made = try await again()
        XCTAssertEqual(made.status, status, made.text, line: line)
    }

    func testPoliciesAreLimitedPerTenantAndReplacingOneIsNotCreating() async throws {
        var limits = ResourceLimits()
        limits[.policiesPerTenant] = 2
        broker = try TestBroker(transport: .inProcess, limits: limits)
        let token = try await broker.tenant("a").token
        let other = try await broker.tenant("b").token
        let policy: JSONValue = ["selector": ["app": "web"], "strategy": "prefer", "units": [["regions": ["*"]]]]
        for name in ["one", "two"] {
            let put = try await broker.call("PUT", "/v1/policies/\(name)", token: token, json: policy)
            XCTAssertEqual(put.status, 201, put.text)
        }
        assertLimitProblem(try await broker.call("PUT", "/v1/policies/three", token: token, json: policy), 403, "policies-per-tenant", 2)
        let listed = try await broker.call("GET", "/v1/policies", token: token)
        XCTAssertEqual(listed.json["policies"]?.array.count, 2, "the refusal created nothing")
        let replaced = try await broker.call("PUT", "/v1/policies/two", token: token, json: policy)
        XCTAssertEqual(replaced.status, 200, "replacing one at the limit: \(replaced.text)")
        try await assertRoomElsewhereAndAfterDeleting(
            status: 201, other: { try await self.broker.call("PUT", "/v1/policies/one", token: other, json: policy) },
            delete: "/v1/policies/one", token: token,
            again: { try await self.broker.call("PUT", "/v1/policies/three", token: token, json: policy) })
    }

    /// Pending allocations are read by the admitter on every pass: a tenant may not queue
    /// without bound. Counted in the database, so every broker sees the same count.
    func testPendingAllocationsAreLimitedPerTenant() async throws {
        var limits = ResourceLimits()
        limits[.pendingAllocationsPerTenant] = 3
        broker = try TestBroker(transport: .inProcess, limits: limits)
        try await broker.region("a")
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 1)
        let token = try await broker.tenant("a").token
        let other = try await broker.tenant("b").token
        let waiting: JSONValue = ["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 2, "queue": true]
        var ids: [String] = []
        for _ in 0..<3 {
            let queued = try await broker.call("POST", "/v1/allocations", token: token, json: waiting)
            XCTAssertEqual(queued.status, 202, queued.text)
            ids.append(try XCTUnwrap(queued.json["id"]?.stringValue))
        }
        let refused = try await broker.call("POST", "/v1/allocations", token: token, json: waiting)
        assertLimitProblem(refused, 429, "pending-allocations-per-tenant", 3)
        XCTAssertNotNil(refused.header("Retry-After"))
        let keyed = try await broker.call("POST", "/v1/allocations", token: token, json: waiting, headers: ["Idempotency-Key": "q4"])
        assertLimitProblem(keyed, 429, "pending-allocations-per-tenant", 3)
        let listed = try await broker.call("GET", "/v1/allocations?status=pending", token: token)
        XCTAssertEqual(listed.json["allocations"]?.array.count, 3, "the refusals queued nothing")
        let granted = try await broker.call(
            "POST", "/v1/allocations", token: token, json: ["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 1])
        XCTAssertEqual(granted.status, 201, "a grant is no pending allocation: \(granted.text)")
        try await assertRoomElsewhereAndAfterDeleting(
            status: 202, other: { try await self.broker.call("POST", "/v1/allocations", token: other, json: waiting) },
            delete: "/v1/allocations/\(ids[0])", token: token,
            again: { try await self.broker.call("POST", "/v1/allocations", token: token, json: waiting) })
    }
}
