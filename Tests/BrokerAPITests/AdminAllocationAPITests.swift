import Foundation
import JSON
import TestSupport
import XCTest

/// The admin reads and acts on any tenant's allocation; the ledger says it was the admin.
final class AdminAllocationAPITests: XCTestCase {
    var broker: TestBroker!

    override func setUp() async throws {
        broker = try TestBroker()
        try await broker.region("r1", primary: true)
        try await broker.region("r2")
        try await broker.pool("r1", "cpu", cpu: 2, memory: 4, capacity: 3)
        try await broker.pool("r2", "cpu", cpu: 2, memory: 4, capacity: 10)
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func testTheAdminListsAndActsOnEveryTenantsAllocations() async throws {
        let (alice, aliceId) = try await broker.tenant("alice")
        let (bob, bobId) = try await broker.tenant("bob")
        let admin = broker.adminToken
        let shape: JSONValue = ["computeClass": "general-purpose", "cpu": 1, "memoryGiB": 2, "replicas": 4]
        let mine = try await broker.call("POST", "/v1/allocations", token: alice, json: shape)
        XCTAssertEqual(mine.status, 201, mine.text)
        XCTAssertNil(mine.json["tenantId"], "a tenant's answers do not name it")
        let id = try XCTUnwrap(mine.json["id"]?.string)
        let r1 = try await broker.call("POST", "/v1/allocations", token: bob, json: ["computeClass": "general-purpose", "cpu": 1, "memoryGiB": 2, "replicas": 1])
        XCTAssertEqual(r1.status, 201)

        let all = try await broker.call("GET", "/v1/admin/allocations", token: admin)
        XCTAssertEqual(all.status, 200, all.text)
        XCTAssertEqual(all.json["allocations"]?.array.compactMap { $0["tenantId"]?.string }, [bobId, aliceId], "newest first")
        let inR1 = try await broker.call("GET", "/v1/admin/allocations?region=r1&status=active&tenant=\(aliceId)", token: admin)
        XCTAssertEqual(inR1.json["allocations"]?.array.compactMap { $0["id"]?.string }, [id], inR1.text)
        XCTAssertEqual(inR1.json["allocations"]?.array.compactMap { $0["tenantId"]?.string }, [aliceId], "one tenant's are named too")
        let paged = try await broker.call("GET", "/v1/admin/allocations?limit=1", token: admin)
        XCTAssertEqual(paged.json["allocations"]?.array.count, 1)
        let next = try XCTUnwrap(paged.json["nextCursor"]?.string)
        let second = try await broker.call("GET", "/v1/admin/allocations?limit=1&cursor=\(next)", token: admin)
        XCTAssertEqual(second.json["allocations"]?.array.first?["tenantId"]?.string, aliceId)
        let r2 = try await broker.call("GET", "/v1/admin/allocations?tenant=nope", token: admin)
        XCTAssertEqual(r2.status, 422)

        let read = try await broker.call("GET", "/v1/admin/allocations/\(id)", token: admin)
        XCTAssertEqual(read.json["tenantId"]?.string, aliceId, read.text)
        let shortened = try await broker.call("POST", "/v1/admin/allocations/\(id)/renew", token: admin, json: ["leaseSeconds": 60])
        XCTAssertEqual(shortened.json["leaseSeconds"], 60, shortened.text)
        let scaled = try await broker.call("PATCH", "/v1/admin/allocations/\(id)", token: admin, json: ["replicas": 2])
        XCTAssertEqual(scaled.json["placedReplicas"], 2, scaled.text)
        let released = try await broker.call("DELETE", "/v1/admin/allocations/\(id)", token: admin)
        XCTAssertEqual(released.json["status"], "released", released.text)
        let events = try await broker.call("GET", "/v1/admin/allocations/\(id)/events", token: admin)
        let kinds = events.json["events"]?.array.map { "\($0["kind"]!.string!) \($0["actor"]!.string!)" } ?? []
        XCTAssertEqual(Set(kinds), ["reserved tenant:\(aliceId)", "renewed admin", "released admin"], events.text)
        let seen = try await broker.call("GET", "/v1/allocations/\(id)", token: alice)
        XCTAssertEqual(seen.json["status"], "released", "the tenant sees what the admin did")

        let r3 = try await broker.call("GET", "/v1/admin/allocations", token: alice)
        XCTAssertEqual(r3.status, 403)
        let r4 = try await broker.call("DELETE", "/v1/admin/allocations/\(id)", token: bob)
        XCTAssertEqual(r4.status, 403)
        let r5 = try await broker.call("GET", "/v1/admin/allocations/\(UUID())", token: admin)
        XCTAssertEqual(r5.status, 404)
        let r6 = try await broker.call("GET", "/v1/admin/allocations/not-an-id", token: admin)
        XCTAssertEqual(r6.status, 404)
    }
}
