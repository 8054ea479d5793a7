import BrokerAPI
import BrokerCore
import Foundation
import TestSupport
import XCTest

final class RateLimitTests: XCTestCase {
    func testBucketRefillsAtTheRateAndCapsAtTheBurst() {
        let limiter = RateLimiter(limit: .init(rate: 2, burst: 3))
        let start = ContinuousClock.now
        XCTAssertEqual((0..<3).map { _ in limiter.acquire("t", now: start) }, [nil, nil, nil])
        XCTAssertEqual(limiter.acquire("t", now: start), 1, "empty: retry after a second")
        XCTAssertNil(limiter.acquire("t", now: start + .milliseconds(500)), "one token back after half a second")
        XCTAssertNotNil(limiter.acquire("t", now: start + .milliseconds(600)))
        XCTAssertNil(limiter.acquire("other", now: start), "buckets are per tenant")
        let later = start + .seconds(60)
        XCTAssertEqual((0..<4).map { limiter.acquire("t", now: later + .nanoseconds($0)) == nil }, [true, true, true, false])
    }

    func testATenantAboveItsLimitGets429WithRetryAfterAndOthersAreServed() async throws {
        let broker = try TestBroker(rateLimit: .init(rate: 1, burst: 3))
        let noisy = try await broker.tenant("noisy").token
        let quiet = try await broker.tenant("quiet").token
        var statuses: [Int] = []
        var limited: TestBroker.Response?
        for _ in 0..<5 {
            let response = try await broker.call("GET", "/v1/regions", token: noisy)
            statuses.append(response.status)
            if response.status == 429 { limited = response }
        }
        XCTAssertEqual(statuses.prefix(3), [200, 200, 200])
        XCTAssertEqual(statuses.last, 429)
        XCTAssertEqual(limited?.json["code"], "rate_limited")
        XCTAssertNotNil(limited?.header("Retry-After"))
        let other = try await broker.call("GET", "/v1/regions", token: quiet)
        XCTAssertEqual(other.status, 200)
        let admin = try await broker.call("GET", "/v1/regions", token: broker.adminToken)
        XCTAssertEqual(admin.status, 200, "the admin is not rate limited")
        await broker.stop()
    }
}
