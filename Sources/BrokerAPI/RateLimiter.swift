import Foundation
import Synchronization

/// Token buckets per key (a tenant, or a client address for failed
/// authentications): `rate` per second on average, bursts up to `burst`. One
/// tenant flooding the broker gets 429s instead of starving the others.
/// Buckets live in this process only: with several brokers each enforces its own share.
public final class RateLimiter: Sendable {
    public struct Limit: Sendable, Equatable {
        public var rate: Double
        public var burst: Double

        public init(rate: Double, burst: Double) {
            self.rate = rate
            self.burst = max(1, burst)
        }
    }

    struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    let limit: Limit
    private let buckets = Mutex<[String: Bucket]>([:])

    public init(limit: Limit) {
        self.limit = limit
    }

    /// Takes one token for `key`; nil when allowed, else the seconds until one is available.
    public func acquire(_ key: String, now: ContinuousClock.Instant = .now) -> Int? {
        take(key, now: now, consume: true)
    }

    /// `acquire` without taking a token: nil when one is available.
    public func wait(_ key: String, now: ContinuousClock.Instant = .now) -> Int? {
        take(key, now: now, consume: false)
    }

    private func take(_ key: String, now: ContinuousClock.Instant, consume: Bool) -> Int? {
        buckets.withLock { buckets in
            if buckets.count >= Self.maxBuckets { forgetFull(&buckets, now: now) }
            var bucket = buckets[key] ?? Bucket(tokens: limit.burst, updated: now)
            let elapsed = Double((now - bucket.updated) / .nanoseconds(1)) / 1e9
            bucket.tokens = min(limit.burst, bucket.tokens + max(0, elapsed) * limit.rate)
            bucket.updated = now
            defer { buckets[key] = bucket }
            if bucket.tokens >= 1 {
                if consume { bucket.tokens -= 1 }
                return nil
            }
            return max(1, Int(((1 - bucket.tokens) / limit.rate).rounded(.up)))
        }
    }

    /// Keys come from clients (addresses): past this many buckets, the ones that
    /// refilled (which a new bucket would equal) are dropped.
    private static var maxBuckets: Int { 10_000 }

    private func forgetFull(_ buckets: inout [String: Bucket], now: ContinuousClock.Instant) {
        buckets = buckets.filter { _, bucket in
            bucket.tokens + Double((now - bucket.updated) / .nanoseconds(1)) / 1e9 * limit.rate < limit.burst
        }
    }
}
