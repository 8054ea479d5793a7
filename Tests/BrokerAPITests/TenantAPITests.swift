import BrokerCore
import Foundation
import JSON
import TestSupport
import XCTest

final class TenantAPITests: XCTestCase {
    var broker: TestBroker!

    override func setUp() async throws {
        broker = try TestBroker()
        try await broker.region("a")
        try await broker.region("idc", kind: "on-premises")
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 50)
        try await broker.pool("idc", "rack", cpu: 2, memory: 4, capacity: 5, price: 0)
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    let small: JSONValue = ["computeClass": "general-purpose", "cpu": 1, "memoryGiB": 2, "replicas": 1]

    func testSameIdempotencyKeyFromThirtyTwoClientsMakesOneAllocation() async throws {
        let token = try await broker.tenant().token
        let broker = self.broker!
        let small = self.small
        let responses = try await withThrowingTaskGroup(of: TestBroker.Response.self) { group in
            for _ in 0..<32 {
                group.addTask {
                    try await broker.call("POST", "/v1/allocations", token: token, json: small, headers: ["Idempotency-Key": "deploy-42"])
                }
            }
            return try await group.reduce(into: [TestBroker.Response]()) { $0.append($1) }
        }
        XCTAssertEqual(Set(responses.map(\.status)), [201])
        XCTAssertEqual(Set(responses.map { $0.json["id"]!.string! }).count, 1)
        XCTAssertEqual(Set(responses.map(\.text)).count, 1, "every replay is the first answer")
        let list = try await broker.call("GET", "/v1/allocations", token: token)
        XCTAssertEqual(list.json["allocations"]!.array.count, 1)
        let other = try await broker.call(
            "POST", "/v1/allocations", token: token,
            json: ["computeClass": "general-purpose", "cpu": 1, "memoryGiB": 2, "replicas": 2],
            headers: ["Idempotency-Key": "deploy-42"])
        XCTAssertEqual(other.status, 422)
        XCTAssertEqual(other.json["code"], "idempotency_key_reused")
        let tooLong = try await broker.call(
            "POST", "/v1/allocations", token: token, json: small, headers: ["Idempotency-Key": String(repeating: "k", count: 256)])
        XCTAssertEqual(tooLong.status, 422)
        // Keys are per tenant: another tenant's identical key is its own request.
        let second = try await broker.tenant("second").token
        let theirs = try await broker.call("POST", "/v1/allocations", token: second, json: small, headers: ["Idempotency-Key": "deploy-42"])
        XCTAssertEqual(theirs.status, 201)
        XCTAssertNotEqual(theirs.json["id"], responses[0].json["id"])
    }

    func testTenantsCannotSeeOrChangeEachOthersAllocations() async throws {
        let alice = try await broker.tenant("alice").token
        let bob = try await broker.tenant("bob").token
        let broker = self.broker!
        var ids: [String: [String]] = [alice: [], bob: []]
        for token in [alice, bob] {
            for _ in 0..<3 {
                ids[token]!.append(try await broker.call("POST", "/v1/allocations", token: token, json: small).json["id"]!.string!)
            }
        }
        let pairs = [(alice, ids[bob]!), (bob, ids[alice]!)]
        let statuses = try await withThrowingTaskGroup(of: [Int].self) { group in
            for (token, foreign) in pairs {
                for id in foreign {
                    group.addTask {
                        [
                            try await broker.call("GET", "/v1/allocations/\(id)", token: token).status,
                            try await broker.call("GET", "/v1/allocations/\(id)/events", token: token).status,
                            try await broker.call("PATCH", "/v1/allocations/\(id)", token: token, json: ["replicas": 2]).status,
                            try await broker.call("POST", "/v1/allocations/\(id)/renew", token: token).status,
                            try await broker.call("DELETE", "/v1/allocations/\(id)", token: token).status,
                        ]
                    }
                }
            }
            return try await group.reduce(into: [Int]()) { $0 += $1 }
        }
        XCTAssertEqual(Set(statuses), [404])
        for (token, own) in [(alice, ids[alice]!), (bob, ids[bob]!)] {
            let listed = try await broker.call("GET", "/v1/allocations", token: token).json["allocations"]!.array
            XCTAssertEqual(listed.map { $0["id"]!.string! }, own.reversed(), "newest first")
            XCTAssertEqual(Set(listed.map { $0["status"]!.string! }), ["active"], "nothing was changed by the other tenant")
        }
    }

    func testRotatingATokenRevokesTheOldOne() async throws {
        let (old, id) = try await broker.tenant("rotating")
        let rotated = try await broker.call("POST", "/v1/admin/tenants/\(id)/tokens", token: broker.adminToken)
        XCTAssertEqual(rotated.status, 201)
        let fresh = rotated.json["token"]!.string!
        XCTAssertNotEqual(fresh, old)
        let r1 = try await broker.call("GET", "/v1/allocations", token: old)
        XCTAssertEqual(r1.status, 401)
        let r2 = try await broker.call("GET", "/v1/allocations", token: fresh)
        XCTAssertEqual(r2.status, 200)
        let renamed = try await broker.call(
            "PATCH", "/v1/admin/tenants/\(id)", token: broker.adminToken, json: ["name": "renamed", "quota": ["instances": 1]])
        XCTAssertEqual(renamed.status, 200, renamed.text)
        XCTAssertEqual(renamed.json["name"], "renamed")
        XCTAssertEqual(renamed.json["quota"]?["instances"], 1)
        let unknown = try await broker.call("POST", "/v1/admin/tenants/\(UUID())/tokens", token: broker.adminToken)
        XCTAssertEqual(unknown.status, 404)
    }

    func testQuotaIsCheckedInsideTheGrantEvenUnderConcurrency() async throws {
        let token = try await broker.tenant("capped", quota: ["instances": 5, "cpu": 100]).token
        let broker = self.broker!
        let small = self.small
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<16 {
                group.addTask { try await broker.call("POST", "/v1/allocations", token: token, json: small).status }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        XCTAssertEqual(statuses.filter { $0 == 201 }.count, 5)
        XCTAssertEqual(statuses.filter { $0 == 403 }.count, 11)
        let over = try await broker.call("POST", "/v1/allocations", token: token, json: small)
        XCTAssertEqual(over.json["code"], "quota_exceeded")
        XCTAssertTrue(over.json["detail"]!.string!.contains("5 in use"), over.text)
        XCTAssertTrue(over.json["detail"]!.string!.contains("limit of 5"), over.text)
    }

    func testNamedPolicySelectedByLabelsPlacesLikeAResourcePolicy() async throws {
        let token = try await broker.tenant().token
        let put = try await broker.call(
            "PUT", "/v1/policies/idc-first", token: token,
            json: ["selector": ["app": "web"], "strategy": "prefer",
                   "units": [["selector": ["kind": "on-premises"], "max": 3], ["regions": ["*"]]]])
        XCTAssertEqual(put.status, 201, put.text)
        let generic = try await broker.call(
            "PUT", "/v1/policies/anything", token: token, json: ["selector": [:], "units": [["regions": ["a"]]]])
        XCTAssertEqual(generic.status, 201, generic.text)
        let replaced = try await broker.call(
            "PUT", "/v1/policies/anything", token: token, json: ["selector": [:], "units": [["regions": ["a"]]]])
        XCTAssertEqual(replaced.status, 200)
        let web = try await broker.call(
            "POST", "/v1/allocations", token: token,
            json: ["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 4, "labels": ["app": "web", "tier": "x"]])
        XCTAssertEqual(web.status, 201, web.text)
        XCTAssertEqual(web.json["instances"]!.array.map { $0["region"]!.string! }, ["idc", "idc", "idc", "a"])
        let other = try await broker.call(
            "POST", "/v1/allocations", token: token,
            json: ["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 1, "labels": ["app": "batch"]])
        XCTAssertEqual(other.json["instances"]!.array.map { $0["region"]!.string! }, ["a"], "the least specific policy")
        let list = try await broker.call("GET", "/v1/policies", token: token)
        XCTAssertEqual(list.json["policies"]!.array.map { $0["name"]!.string! }, ["anything", "idc-first"])
        let stranger = try await broker.tenant("stranger").token
        let r3 = try await broker.call("GET", "/v1/policies/idc-first", token: stranger)
        XCTAssertEqual(r3.status, 404)
        let r4 = try await broker.call("DELETE", "/v1/policies/idc-first", token: token)
        XCTAssertEqual(r4.status, 204)
        let r5 = try await broker.call("GET", "/v1/policies/idc-first", token: token)
        XCTAssertEqual(r5.status, 404)
    }

    /// Grants reuse a tenant's settings for a second, but the database checks them as
    /// the grant commits: a new policy or quota applies to the very next grant.
    func testPolicyAndQuotaChangesApplyToTheNextGrant() async throws {
        let tenant = try await broker.tenant("changing")
        let first = try await broker.call("POST", "/v1/allocations", token: tenant.token, json: small)
        XCTAssertEqual(first.json["instances"]!.array.map { $0["region"]!.string! }, ["a"], first.text)
        let put = try await broker.call(
            "PUT", "/v1/policies/idc-only", token: tenant.token, json: ["selector": [:], "units": [["regions": ["idc"]]]])
        XCTAssertEqual(put.status, 201, put.text)
        let second = try await broker.call("POST", "/v1/allocations", token: tenant.token, json: small)
        XCTAssertEqual(second.json["instances"]!.array.map { $0["region"]!.string! }, ["idc"], second.text)
        let capped = try await broker.call(
            "PATCH", "/v1/admin/tenants/\(tenant.id)", token: broker.adminToken, json: ["quota": ["instances": 2]])
        XCTAssertEqual(capped.status, 200, capped.text)
        let third = try await broker.call("POST", "/v1/allocations", token: tenant.token, json: small)
        XCTAssertEqual(third.status, 403, third.text)
        XCTAssertEqual(third.json["code"], "quota_exceeded")
    }

    func testAQuotaPatchKeepsTheLimitsNotGiven() async throws {
        let tenant = try await broker.tenant("kept")
        let path = "/v1/admin/tenants/\(tenant.id)"
        let set = try await broker.call("PATCH", path, token: broker.adminToken, json: ["quota": ["gpus": 8, "instances": 4]])
        XCTAssertEqual(set.json["quota"], ["gpus": 8, "instances": 4], set.text)
        let budget = try await broker.call("PATCH", path, token: broker.adminToken, json: ["quota": ["spendPerMonth": 100]])
        XCTAssertEqual(budget.json["quota"], ["gpus": 8, "instances": 4, "spendPerMonth": 100], budget.text)
        let removed = try await broker.call("PATCH", path, token: broker.adminToken, json: ["quota": ["gpus": .null]])
        XCTAssertEqual(removed.json["quota"], ["instances": 4, "spendPerMonth": 100], removed.text)
        let renamed = try await broker.call("PATCH", path, token: broker.adminToken, json: ["name": "renamed"])
        XCTAssertEqual(renamed.json["quota"], ["instances": 4, "spendPerMonth": 100], renamed.text)
        let bad = try await broker.call("PATCH", path, token: broker.adminToken, json: ["quota": ["instances": -1, "gpus": 2]])
        XCTAssertEqual(bad.status, 422, bad.text)
        let after = try await broker.call("GET", "/v1/admin/tenants", token: broker.adminToken)
        XCTAssertEqual(after.json["tenants"]!.array.first { $0["id"]!.string == tenant.id }?["quota"],
                       ["instances": 4, "spendPerMonth": 100], "a refused patch changes nothing")
    }

    func testTheAdminReadsATenantsAllocationsAsTheTenantDoes() async throws {
        let (alice, aliceId) = try await broker.tenant("alice")
        let bob = try await broker.tenant("bob").token
        for replicas in [1, 2, 3] {
            let made = try await broker.call(
                "POST", "/v1/allocations", token: alice,
                json: ["computeClass": "general-purpose", "cpu": 1, "memoryGiB": 2, "replicas": .number(Double(replicas))])
            XCTAssertEqual(made.status, 201)
        }
        _ = try await broker.call("POST", "/v1/allocations", token: bob, json: small)
        for query in ["", "?limit=2", "?status=active&region=a", "?status=released"] {
            let own = try await broker.call("GET", "/v1/allocations\(query)", token: alice)
            let read = try await broker.call("GET", "/v1/admin/tenants/\(aliceId)/allocations\(query)", token: broker.adminToken)
            XCTAssertEqual(read.status, 200, query)
            XCTAssertEqual(read.json, own.json, query)
        }
        let all = try await broker.call("GET", "/v1/admin/tenants/\(aliceId)/allocations", token: broker.adminToken)
        XCTAssertEqual(all.json["allocations"]!.array.count, 3, "alice's only")
        let byTenant = try await broker.call("GET", "/v1/admin/tenants/\(aliceId)/allocations", token: alice)
        XCTAssertEqual(byTenant.status, 403)
        let unknown = try await broker.call(
            "GET", "/v1/admin/tenants/0b6f8f4e-2a4e-4f0b-9d1c-3c2b1a0f9e8d/allocations", token: broker.adminToken)
        XCTAssertEqual(unknown.status, 404)
        let refused = try await broker.call("GET", "/v1/admin/tenants/\(aliceId)/allocations?limit=0", token: broker.adminToken)
        XCTAssertEqual(refused.status, 422)
    }
}
