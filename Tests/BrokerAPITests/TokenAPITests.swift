import BrokerCore
import Foundation
import JSON
import TestSupport
import XCTest

/// Named tokens: made, listed and revoked by a tenant's tenant-admin, each acting with
/// its role narrowed to its scopes, until it expires or is revoked.
final class TokenAPITests: XCTestCase {
    var broker: TestBroker!
    var owner: String!

    override func setUp() async throws {
        var limits = ResourceLimits()
        limits[.tokensPerTenant] = 3
        broker = try TestBroker(limits: limits)
        try await broker.region("a")
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 10)
        owner = try await broker.tenant("team").token
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    let small: JSONValue = ["computeClass": "general-purpose", "cpu": 1, "memoryGiB": 2, "replicas": 1]

    func make(_ body: JSONValue, by token: String? = nil) async throws -> TestBroker.Response {
        try await broker.call("POST", "/v1/tokens", token: token ?? owner, json: body)
    }

    func testATokenIsShownOnceStoredHashedAndStopsWorkingWhenRevoked() async throws {
        let made = try await make(["name": "ci", "role": "member"])
        XCTAssertEqual(made.status, 201, made.text)
        let secret = try XCTUnwrap(made.json["token"]?.string)
        XCTAssertTrue(secret.hasPrefix("gpbt_"))
        XCTAssertEqual(made.json["createdBy"]?.string?.hasPrefix("tenant:"), true)
        let id = try XCTUnwrap(made.json["id"]?.string)
        XCTAssertEqual(made.header("Location"), "/v1/tokens/\(id)")

        let granted = try await broker.call("POST", "/v1/allocations", token: secret, json: small)
        XCTAssertEqual(granted.status, 201, "a member allocates: \(granted.text)")
        let mine = try await broker.call("GET", "/v1/allocations", token: owner)
        XCTAssertEqual(mine.json["allocations"]?.array.count, 1, "the token's allocation is its tenant's")

        let listed = try await broker.call("GET", "/v1/tokens", token: owner)
        XCTAssertEqual(listed.status, 200)
        let entry = try XCTUnwrap(listed.json["tokens"]?.array.first)
        XCTAssertNil(entry["token"], "the secret is never shown again")
        XCTAssertNotNil(entry["lastUsedAt"]?.string, "the use is recorded")
        let stored: String = try await broker.pool.withConnection { c in
            try c.query("SELECT encode(token_hash, 'hex') AS h FROM api_tokens")[0].decode("h")
        }
        XCTAssertNotEqual(stored, secret)
        XCTAssertEqual(stored.count, 64, "a SHA-256, not the secret")

        let revoked = try await broker.call("DELETE", "/v1/tokens/\(id)", token: owner)
        XCTAssertEqual(revoked.status, 204)
        let after = try await broker.call("GET", "/v1/allocations", token: secret)
        XCTAssertEqual(after.status, 401, "revoked: refused at once")
        let answer1 = try await broker.call("DELETE", "/v1/tokens/\(id)", token: owner)
        XCTAssertEqual(answer1.status, 404)
    }

    func testAScopedTokenDoesOnlyWhatItsScopesSay() async throws {
        let made = try await make(["name": "reader", "role": "tenant-admin", "scopes": ["allocations:read", "inventory:read"]])
        XCTAssertEqual(made.status, 201, made.text)
        let secret = try XCTUnwrap(made.json["token"]?.string)
        let answer2 = try await broker.call("GET", "/v1/allocations", token: secret)
        XCTAssertEqual(answer2.status, 200)
        let answer3 = try await broker.call("GET", "/v1/regions", token: secret)
        XCTAssertEqual(answer3.status, 200)
        for (method, path, body) in [
            ("POST", "/v1/allocations", small), ("GET", "/v1/usage", nil), ("GET", "/v1/policies", nil),
            ("GET", "/v1/tokens", nil), ("POST", "/v1/tokens", ["name": "escalate"] as JSONValue),
        ] as [(String, String, JSONValue?)] {
            let refused = try await broker.call(method, path, token: secret, json: body)
            XCTAssertEqual(refused.status, 403, "\(method) \(path): \(refused.text)")
            XCTAssertEqual(refused.json["code"], "forbidden")
        }
        let allocations = try await broker.call("GET", "/v1/allocations", token: owner)
        XCTAssertEqual(allocations.json["allocations"]?.array.count, 0, "the refused request changed nothing")
        // Scopes narrow a role, never widen it: a viewer with allocations:write still cannot allocate.
        let viewer = try await make(["name": "viewer", "role": "viewer", "scopes": ["allocations:write"]])
        let refused = try await broker.call("POST", "/v1/allocations", token: viewer.json["token"]!.string!, json: small)
        XCTAssertEqual(refused.status, 403)
    }

    func testAnExpiredTokenIsRefused() async throws {
        let made = try await make(["name": "short", "expiresInSeconds": 60])
        XCTAssertEqual(made.status, 201, made.text)
        XCTAssertEqual(made.json["role"], "member", "member unless said")
        XCTAssertNotNil(made.json["expiresAt"]?.string)
        let secret = try XCTUnwrap(made.json["token"]?.string)
        try await broker.pool.withConnection { c in
            try c.query("UPDATE api_tokens SET expires_at = now() - interval '1 second'")
        }
        // Never looked up before, so no cached lookup hides the expiry.
        let answer4 = try await broker.call("GET", "/v1/allocations", token: secret)
        XCTAssertEqual(answer4.status, 401)
    }

    func testOnlyATenantAdminManagesTokensOfItsOwnTenant() async throws {
        let member = try await make(["name": "member"])
        let memberSecret = try XCTUnwrap(member.json["token"]?.string)
        let answer5 = try await make(["name": "other"], by: memberSecret)
        XCTAssertEqual(answer5.status, 403)
        let answer6 = try await make(["name": "other"], by: broker.adminToken)
        XCTAssertEqual(answer6.status, 403, "the platform admin is no tenant")

        let stranger = try await broker.tenant("stranger").token
        let theirs = try await broker.call("GET", "/v1/tokens", token: stranger)
        XCTAssertEqual(theirs.json["tokens"]?.array.count, 0, "another tenant's tokens are not listed")
        let id = try XCTUnwrap(member.json["id"]?.string)
        let answer7 = try await broker.call("DELETE", "/v1/tokens/\(id)", token: stranger)
        XCTAssertEqual(answer7.status, 404)
        let answer8 = try await broker.call("GET", "/v1/allocations", token: memberSecret)
        XCTAssertEqual(answer8.status, 200, "still working")
    }

    func testBadRequestsAreRefusedAndChangeNothing() async throws {
        for body: JSONValue in [
            ["name": "x", "role": "admin"], ["name": "x", "scopes": ["allocations:everything"]], ["name": "Bad Name"],
            ["name": "x", "expiresInSeconds": 5], ["role": "member"], ["name": "x", "colour": "red"],
        ] {
            let refused = try await make(body)
            XCTAssertEqual(refused.status, 422, "\(String(decoding: body.encoded(), as: UTF8.self)): \(refused.text)")
            XCTAssertEqual(refused.json["code"], "validation_failed")
        }
        let answer9 = try await make(["name": "same"])
        XCTAssertEqual(answer9.status, 201)
        let again = try await make(["name": "same"])
        XCTAssertEqual(again.status, 409, again.text)
        let answer10 = try await make(["name": "two"])
        XCTAssertEqual(answer10.status, 201)
        let answer11 = try await make(["name": "three"])
        XCTAssertEqual(answer11.status, 201)
        let over = try await make(["name": "four"])
        XCTAssertEqual(over.status, 403)
        XCTAssertEqual(over.json["code"], "limit_exceeded")
        XCTAssertEqual(over.json["limitName"], "tokens-per-tenant")
        let listed = try await broker.call("GET", "/v1/tokens", token: owner)
        XCTAssertEqual(listed.json["tokens"]?.array.map { $0["name"]?.string ?? "" }, ["same", "two", "three"])
    }
}
