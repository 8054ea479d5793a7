import BrokerCore
import Foundation
import TestHarness
import TestSupport
import XCTest

/// Every list pages with `limit` and `cursor` over an index of its filters and order.
final class ListPaginationTests: XCTestCase {
    var broker: TestBroker!

    override func setUp() async throws {
        broker = try TestBroker()
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    /// Follows `nextCursor` from `path` (which has a query) to the end; the names of `key`.
    func walk(_ path: String, _ list: String, key: String, token: String) async throws -> [String] {
        var seen: [String] = []
        var cursor: String? = nil
        repeat {
            let page = try await broker.call("GET", path + (cursor.map { "&cursor=\($0)" } ?? ""), token: token)
            XCTAssertEqual(page.status, 200, page.text)
            seen += page.json[list]!.array.map { $0[key]!.string! }
            cursor = page.json["nextCursor"]?.string
        } while cursor != nil
        return seen
    }

    func testTenantsPageNewestFirstAndRegionsByID() async throws {
        var tenants: [String] = []
        for n in 0..<5 { tenants.append(try await broker.tenant("t\(n)").id) }
        let admin = broker.adminToken
        let listed = try await walk("/v1/admin/tenants?limit=2", "tenants", key: "id", token: admin)
        XCTAssertEqual(listed, tenants.reversed())
        for id in ["c", "a", "e", "b", "d"] { try await broker.region(id) }
        let regions = try await walk("/v1/regions?limit=2", "regions", key: "id", token: admin)
        XCTAssertEqual(regions, ["a", "b", "c", "d", "e"])
        let all = try await broker.call("GET", "/v1/regions", token: admin)
        XCTAssertEqual(all.json["nextCursor"], .null)
        for (path, field) in [
            ("/v1/admin/tenants?cursor=nope", "cursor"), ("/v1/admin/tenants?limit=101", "limit"),
            ("/v1/regions?limit=0", "limit"), ("/v1/regions?order=id", "order"),
        ] {
            let refused = try await broker.call("GET", path, token: admin)
            XCTAssertEqual(refused.status, 422, path)
            XCTAssertEqual(refused.json["errors"]?[0]?["field"]?.string, field, path)
        }
    }

    /// Filters by status and by region (any instance ever there), alone and together,
    /// newest first and page by page.
    func testAllocationFiltersPageThroughTheirOwnIndexes() async throws {
        try await broker.region("a")
        try await broker.region("b")
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 100)
        try await broker.pool("b", "cpu", cpu: 2, memory: 4, capacity: 100, price: 5)
        let token = try await broker.tenant().token
        var inA: [String] = []
        var inB: [String] = []
        for n in 0..<6 {
            let region = n % 2 == 0 ? "a" : "b"
            let made = try await broker.call(
                "POST", "/v1/allocations", token: token,
                json: ["computeClass": "general-purpose", "cpu": 1, "memoryGiB": 1, "replicas": 1, "region": .string(region)])
            XCTAssertEqual(made.status, 201, made.text)
            let id = made.json["id"]!.string!
            if region == "a" { inA.append(id) } else { inB.append(id) }
        }
        _ = try await broker.call("DELETE", "/v1/allocations/\(inA[0])", token: token)
        _ = try await broker.call("DELETE", "/v1/allocations/\(inB[2])", token: token)
        let inRegionA = try await walk("/v1/allocations?region=a&limit=2", "allocations", key: "id", token: token)
        XCTAssertEqual(inRegionA, inA.reversed())
        let activeInB = try await walk("/v1/allocations?region=b&status=active&limit=1", "allocations", key: "id", token: token)
        XCTAssertEqual(activeInB, [inB[1], inB[0]])
        let released = try await walk("/v1/allocations?status=released&limit=1", "allocations", key: "id", token: token)
        XCTAssertEqual(released, [inB[2], inA[0]])
        let badCursor = try await broker.call("GET", "/v1/allocations?cursor=-1", token: token)
        XCTAssertEqual(badCursor.status, 422)
    }
}
