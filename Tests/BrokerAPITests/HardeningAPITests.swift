import BrokerCore
import BrokerStore
import Foundation
import PostgresClient
import TestSupport
import XCTest

/// Issue 17 against the broker: paths that acted on another resource, refusals as
/// problem+json, duplicate JSON keys, repeated query parameters, failed logins.
final class HardeningAPITests: XCTestCase {
    var broker: TestBroker!

    override func setUp() async throws {
        broker = try TestBroker()
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func assertProblem(_ response: TestBroker.Response, _ status: Int, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(response.status, status, response.text, file: file, line: line)
        XCTAssertEqual(response.header("Content-Type"), "application/problem+json", file: file, line: line)
        XCTAssertEqual(response.json["status"], .number(Double(status)), file: file, line: line)
    }

    /// (2) `%00` and `%2F` used to be decoded before routing: they acted on region
    /// `r3`'s pool and rotated a token.
    func testEncodedNulAndSlashNoLongerReachAnotherResource() async throws {
        try await broker.region("r3", primary: true)
        try await broker.pool("r3", "p", capacity: 1)
        let tenant = try await broker.tenant()
        let admin = broker.adminToken
        assertProblem(try await broker.call("DELETE", "/v1/admin/regions/r3%00/pools/p", token: admin), 400)
        assertProblem(try await broker.call("PUT", "/v1/admin/regions/r3/pools/p%00x", token: admin, json: ["capacity": 5]), 400)
        assertProblem(try await broker.call("POST", "/v1/admin/tenants/\(tenant.id)%2Ftokens", token: admin), 400)
        let pool = try await broker.call("GET", "/v1/regions/r3/inventory", token: admin)
        XCTAssertEqual(pool.json["pools"]?[0]?["capacity"], 1, "the pool is still there, unchanged: \(pool.text)")
        let stillValid = try await broker.call("GET", "/v1/allocations", token: tenant.token)
        XCTAssertEqual(stillValid.status, 200, "the token was not rotated")
    }

    /// (7) the server's own refusals are problem+json too.
    func testLongTargetsAndManyParametersAreProblems() async throws {
        assertProblem(try await broker.call("GET", "/v1/regions/" + String(repeating: "r", count: 20_000)), 414)
        let many = (0..<462).map { "p\($0)=1" }.joined(separator: "&")
        assertProblem(try await broker.call("GET", "/v1/inventory?" + many), 414)
        let padding = String(repeating: "h", count: 8_000)
        let tooMuch = try await broker.call(
            "GET", "/v1/regions?q=" + String(repeating: "q", count: 10_000), headers: ["X-Padding": padding])
        assertProblem(tooMuch, 431)
    }

    /// (8) a key given twice in one object is refused, wherever it is.
    func testDuplicateJSONKeysAreRefused() async throws {
        let token = try await broker.tenant().token
        let body = Array(#"{"computeClass":"general-purpose","cpu":1,"memoryGiB":2,"replicas":1,"replicas":500}"#.utf8)
        let response = try await broker.call(
            "POST", "/v1/allocations", token: token, body: body, headers: ["Content-Type": "application/json"])
        assertProblem(response, 422)
        XCTAssertEqual(response.json["errors"]?[0]?["field"], "replicas")
    }

    /// (8) `gpuSeries` as generated clients send an array, or comma-separated;
    /// another parameter given twice is refused.
    func testRepeatedQueryParametersAreAListOrRefused() async throws {
        try await broker.region("a", primary: true)
        try await broker.pool("a", "t4", series: "T4", gpuMemory: 16, capacity: 3)
        try await broker.pool("a", "a10", series: "A10", capacity: 2)
        let token = try await broker.tenant().token
        let shape = "/v1/inventory?computeClass=gpu&cpu=1&memoryGiB=1"
        let comma = try await broker.call("GET", shape + "&gpuSeries=A10,T4", token: token)
        let repeated = try await broker.call("GET", shape + "&gpuSeries=A10&gpuSeries=T4", token: token)
        XCTAssertEqual(comma.status, 200, comma.text)
        XCTAssertEqual(repeated.text, comma.text)
        // The contract accepts what it describes: GPU filters on a class without GPUs match nothing.
        try await broker.pool("a", "cpu", cpu: 4, memory: 8, capacity: 5)
        let cpuOnly = "/v1/inventory?computeClass=general-purpose&cpu=1&memoryGiB=1"
        let unfiltered = try await broker.call("GET", cpuOnly, token: token)
        XCTAssertEqual(unfiltered.json["regions"]?[0]?["availableReplicas"], 5)
        let filtered = try await broker.call("GET", cpuOnly + "&gpuSeries=T4", token: token)
        XCTAssertEqual(filtered.status, 200, filtered.text)
        XCTAssertEqual(filtered.json["regions"]?[0]?["availableReplicas"], 0, filtered.text)
        let twice = try await broker.call("GET", shape + "&gpuSeries=T4&cpu=2", token: token)
        assertProblem(twice, 422)
        XCTAssertEqual(twice.json["errors"]?[0]?["field"], "cpu")
    }

    /// (8) failed authentications from one address are limited (20 at once, then
    /// 5 a second), and a token that is not known is not looked up again at once.
    func testFailedAuthenticationsAreLimitedPerAddressAndMissesCached() async throws {
        let tenant = try await broker.tenant()
        _ = try await broker.call("GET", "/v1/regions", token: tenant.token)  // cached from here
        var statuses: [Int] = []
        for attempt in 0..<30 {
            statuses.append(try await broker.call("GET", "/v1/regions", token: "gpb_guess\(attempt)").status)
        }
        let limited = statuses.firstIndex(of: 429)
        print("failed authentications: \(statuses.filter { $0 == 401 }.count) × 401, then 429 from attempt \(limited.map { $0 + 1 } ?? 0)")
        XCTAssertEqual(Array(statuses.prefix(20)), Array(repeating: 401, count: 20))
        XCTAssertEqual(statuses.last, 429)
        let refused = try await broker.call("GET", "/v1/regions", token: "gpb_guess-more")
        assertProblem(refused, 429)
        XCTAssertNotNil(refused.header("Retry-After"))
        let known = try await broker.call("GET", "/v1/regions", token: tenant.token)
        XCTAssertEqual(known.status, 200, "a cached token still passes")

        // A miss is remembered for the cache lifetime (1 s): a token that appears
        // meanwhile is found only after it.
        let store = TenantStore(pool: broker.pool)
        let token = "gpb_appears-later"
        let missed = try await store.authenticate(token: token)
        XCTAssertNil(missed)
        try await broker.pool.withConnection { c in
            try c.query(
                """
                INSERT INTO tenants (id, name, token_hash, quota)
                VALUES ($1, 'later', sha256(convert_to($2, 'UTF8')), '{}'::jsonb)
                """, [UUID(), token])
        }
        let stillMissed = try await store.authenticate(token: token)
        XCTAssertNil(stillMissed, "the miss was cached: no second lookup")
        try await Task.sleep(for: .milliseconds(1_100))
        let found = try await store.authenticate(token: token)
        XCTAssertEqual(found?.name, "later")
    }
}
