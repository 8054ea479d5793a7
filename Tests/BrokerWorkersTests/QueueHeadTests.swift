import BrokerCore
import BrokerStore
import Foundation
import JSON
import TestSupport
import XCTest

/// Issue 31, F1: the pending admitter read only the 100 oldest pending allocations, so
/// blocked requests at the head of the queue kept a request that fits waiting for hours.
final class QueueHeadTests: XCTestCase {
    var broker: TestBroker!
    var maintenance: MaintenanceStore { MaintenanceStore(pool: broker.pool) }

    override func setUp() async throws {
        // One tenant queues a thousand here: past the default pending limit, as an admin may allow.
        var limits = ResourceLimits()
        limits[.pendingAllocationsPerTenant] = 1000
        broker = try TestBroker(transport: .inProcess, limits: limits)
        try await broker.region("a", primary: true)
        try await broker.pool("a", "t4", series: "T4", capacity: 10, price: 1)
        try await broker.pool("a", "l4", series: "L4", capacity: 1, price: 1)
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func request(_ series: String, queue: Bool = true, lease: Int = 3600) -> JSONValue {
        ["computeClass": "gpu", "gpuSeries": .array([.string(series)]), "gpuCount": 1, "cpu": 4, "memoryGiB": 16,
         "replicas": 1, "queue": .bool(queue), "leaseSeconds": .number(Double(lease))]
    }

    /// Tenant B holds the only L4 and queues a second; `ahead` of it wait `blocked`
    /// requests. B releases its L4: one admitter pass must admit B's queued request.
    func assertAdmittedPast(ahead count: Int, blocker token: String, file: StaticString = #filePath, line: UInt = #line) async throws {
        let b = try await broker.tenant("b").token
        let holder = try await broker.call("POST", "/v1/allocations", token: b, json: request("L4"))
        XCTAssertEqual(holder.status, 201, holder.text, file: file, line: line)
        for _ in 0..<count {
            let blocked = try await broker.call("POST", "/v1/allocations", token: token, json: request("T4"))
            XCTAssertEqual(blocked.status, 202, blocked.text, file: file, line: line)
        }
        let queued = try await broker.call("POST", "/v1/allocations", token: b, json: request("L4"))
        XCTAssertEqual(queued.status, 202, queued.text, file: file, line: line)
        _ = try await broker.call("DELETE", "/v1/allocations/\(holder.json["id"]!.string!)", token: b)

        let started = ContinuousClock.now
        let result = try await maintenance.admitPending()
        let took = ContinuousClock.now - started
        XCTAssertEqual(result.admitted, 1, file: file, line: line)
        let view = try await broker.call("GET", "/v1/allocations/\(queued.json["id"]!.string!)", token: b)
        XCTAssertEqual(view.json["status"], "active", "\(count) blocked requests ahead kept it pending", file: file, line: line)
        XCTAssertLessThan(took, .seconds(1), file: file, line: line)
        print("F1: admitted past \(count) blocked requests in one pass of \(took)")
    }

    /// 100 T4 requests of a tenant over its budget (queued to wait for budget) ahead.
    func testRequestThatFitsIsAdmittedPastAHundredRequestsHeldByTheirTenantsBudget() async throws {
        let a = try await broker.tenant("a", quota: ["spendPerMonth": 1.5]).token
        let first = try await broker.call("POST", "/v1/allocations", token: a, json: request("T4"))
        XCTAssertEqual(first.status, 201, first.text)
        try await assertAdmittedPast(ahead: 100, blocker: a)
    }

    /// 1,000 T4 requests of a tenant without limits, waiting for T4 capacity, ahead.
    func testRequestThatFitsIsAdmittedPastAThousandRequestsWaitingForCapacity() async throws {
        let a = try await broker.tenant("a").token
        for _ in 0..<10 {
            let taken = try await broker.call("POST", "/v1/allocations", token: a, json: request("T4", queue: false))
            XCTAssertEqual(taken.status, 201, taken.text)
        }
        try await assertAdmittedPast(ahead: 1000, blocker: a)
    }
}
