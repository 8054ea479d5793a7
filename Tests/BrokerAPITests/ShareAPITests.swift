import Foundation
import JSON
import TestSupport
import XCTest

/// Issue 28 through the API on a real PostgreSQL: the admin sets shares (PUT replaces,
/// PATCH merges), a cohort's guarantees cannot promise more than the pools hold, and a
/// tenant reads where it stands, never another tenant's standing.
final class ShareAPITests: XCTestCase {
    var broker: TestBroker!

    override func setUp() async throws {
        broker = try TestBroker()
        try await broker.region("a", primary: true)
        // 8 A10 GPUs (4 instances of 2) and 4 T4.
        try await broker.pool("a", "a10", series: "A10", gpus: 2, capacity: 4, price: 2)
        try await broker.pool("a", "t4", series: "T4", capacity: 4, price: 1)
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func share(_ method: String, _ tenant: String, _ body: JSONValue? = nil) async throws -> TestBroker.Response {
        try await broker.call(method, "/v1/admin/tenants/\(tenant)/share", token: broker.adminToken, json: body)
    }

    func testPutReplacesPatchMergesAndGetReadsBack() async throws {
        let team = try await broker.tenant("team")
        let put = try await share("PUT", team.id, [
            "cohort": "research",
            "resources": ["gpu:A10": ["guaranteed": 4, "weight": 2, "borrowingLimit": 2], "gpus": ["guaranteed": 2]],
        ])
        XCTAssertEqual(put.status, 200, put.text)
        XCTAssertEqual(put.json["resources"]?["gpu:A10"], ["guaranteed": 4, "weight": 2, "borrowingLimit": 2, "lendingLimit": nil])
        let patch = try await share("PATCH", team.id, ["resources": ["gpu:A10": ["weight": 3, "borrowingLimit": nil], "gpus": nil]])
        XCTAssertEqual(patch.status, 200, patch.text)
        let read = try await share("GET", team.id)
        XCTAssertEqual(read.json, [
            "cohort": "research",
            "resources": ["gpu:A10": ["guaranteed": 4, "weight": 3, "borrowingLimit": nil, "lendingLimit": nil]],
        ])
        let replaced = try await share("PUT", team.id, ["resources": ["gpu:T4": ["guaranteed": 2]]])
        XCTAssertEqual(replaced.status, 200, replaced.text)
        XCTAssertEqual(replaced.json["cohort"], .null, "PUT replaces: the cohort not given is gone")
        XCTAssertEqual(replaced.json["resources"]?.objectValue?.keys.sorted(), ["gpu:T4"])
        let noCPU = try await share("PATCH", team.id, ["resources": ["cpu": ["guaranteed": 8]]])
        XCTAssertEqual(noCPU.status, 409, "no CPU pool: no CPU can be guaranteed\n\(noCPU.text)")
    }

    func testInvalidOrUnknownChangesNothing() async throws {
        let team = try await broker.tenant("team")
        _ = try await share("PUT", team.id, ["resources": ["gpus": ["guaranteed": 1]]])
        let invalid = try await share("PATCH", team.id, ["resources": ["gpus": ["guaranteed": -1], "disk": ["guaranteed": 1]]])
        XCTAssertEqual(invalid.status, 422, invalid.text)
        XCTAssertEqual(invalid.json["code"], "validation_failed")
        let unknown = try await share("PUT", UUID().uuidString.lowercased(), ["resources": [:]])
        XCTAssertEqual(unknown.status, 404, unknown.text)
        let byTenant = try await broker.call(
            "PUT", "/v1/admin/tenants/\(team.id)/share", token: team.token, json: ["resources": ["gpus": ["guaranteed": 8]]])
        XCTAssertEqual(byTenant.status, 403, byTenant.text)
        let read = try await share("GET", team.id)
        XCTAssertEqual(read.json["resources"]?["gpus"]?["guaranteed"], 1)
    }

    /// The pools hold 8 A10 GPUs: 6 guaranteed to one tenant leave 2; 4 more to a tenant of
    /// cohort "research" are refused with the cohort, the model, the sum and the capacity.
    func testGuaranteesBeyondWhatThePoolsHoldAreRefusedWithTheNumbers() async throws {
        let first = try await broker.tenant("first")
        let second = try await broker.tenant("second")
        let ok = try await share("PUT", first.id, ["cohort": "research", "resources": ["gpu:A10": ["guaranteed": 6]]])
        XCTAssertEqual(ok.status, 200, ok.text)
        let refused = try await share("PUT", second.id, ["cohort": "research", "resources": ["gpu:A10": ["guaranteed": 4]]])
        XCTAssertEqual(refused.status, 409, refused.text)
        XCTAssertEqual(
            refused.json["detail"],
            "guarantees of gpu:A10 would total 10 GPU (cohort 'research': 10, other cohorts: 0), but the pools of active regions hold 8 GPU")
        let unchanged = try await share("GET", second.id)
        XCTAssertEqual(unchanged.json, ["cohort": nil, "resources": [:]], "a refused change changes nothing")
        let fits = try await share("PUT", second.id, ["cohort": "research", "resources": ["gpu:A10": ["guaranteed": 2]]])
        XCTAssertEqual(fits.status, 200, fits.text)
        // Lowering a guarantee is never refused, even after the pools shrank.
        try await broker.pool("a", "a10", series: "A10", gpus: 2, capacity: 1, price: 2)
        let lowered = try await share("PATCH", first.id, ["resources": ["gpu:A10": ["guaranteed": 5]]])
        XCTAssertEqual(lowered.status, 200, lowered.text)
    }

    /// A tenant guaranteed 2 A10 that holds 6 borrows 4 (of 8: share 0.5); another of its
    /// cohort, guaranteed 2 and holding none, lends 2. Each reads only its own report.
    func testATenantReadsItsOwnStandingAndTheAdminEveryones() async throws {
        let big = try await broker.tenant("big")
        let small = try await broker.tenant("small")
        _ = try await share("PUT", big.id, ["cohort": "lab", "resources": ["gpu:A10": ["guaranteed": 2]]])
        _ = try await share("PUT", small.id, ["cohort": "lab", "resources": ["gpu:A10": ["guaranteed": 2]]])
        let grant = try await broker.call("POST", "/v1/allocations", token: big.token, json: [
            "computeClass": "gpu", "gpuSeries": ["A10"], "gpuCount": 2, "cpu": 4, "memoryGiB": 16, "replicas": 3,
        ])
        XCTAssertEqual(grant.status, 201, grant.text)

        let mine = try await broker.call("GET", "/v1/shares", token: big.token)
        XCTAssertEqual(mine.status, 200, mine.text)
        XCTAssertEqual(mine.json["tenantId"]?.string, big.id)
        XCTAssertEqual(mine.json["dominantShare"], 0.5, "4 of 8 A10 borrowed (and 6 of 12 GPUs)")
        let a10 = mine.json["resources"]?.arrayValue?.first { $0["resource"] == "gpu:A10" }
        XCTAssertEqual(a10, [
            "resource": "gpu:A10", "guaranteed": 2, "weight": 1, "borrowingLimit": nil, "lendingLimit": nil,
            "held": 6, "borrowed": 4, "lent": 0, "poolsHold": 8,
        ])
        XCTAssertTrue(mine.json["nextRequest"]?.string?.hasPrefix("It borrows above its guarantees") == true, mine.text)

        let theirs = try await broker.call("GET", "/v1/shares", token: small.token)
        XCTAssertEqual(theirs.json["tenantId"]?.string, small.id)
        XCTAssertEqual(theirs.json["dominantShare"], 0)
        let lent = theirs.json["resources"]?.arrayValue?.first { $0["resource"] == "gpu:A10" }
        XCTAssertEqual(lent?["lent"], 2)
        XCTAssertFalse(theirs.text.contains(big.id), "a tenant's report never names another tenant")

        let all = try await broker.call("GET", "/v1/admin/shares", token: broker.adminToken)
        XCTAssertEqual(all.status, 200, all.text)
        XCTAssertEqual(all.json["shares"]?.arrayValue?.compactMap { $0["tenantName"]?.string }, ["big", "small"])
        let forbidden = try await broker.call("GET", "/v1/admin/shares", token: small.token)
        XCTAssertEqual(forbidden.status, 403, forbidden.text)
    }
}
