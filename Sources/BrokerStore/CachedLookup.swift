/// A lookup by a bearer secret whose answers, found or not, are reused for a short while:
/// authentication is otherwise a round trip on every request, and a client retrying a bad
/// secret (or guessing) costs none each time. New secrets are random, so a remembered miss
/// never hides one.
final class CachedLookup<Value: Sendable>: Sendable {
    let found: ShortLivedCache<String, Value>
    private let misses: ShortLivedCache<String, Bool>

    init(lifetime: Duration) {
        found = ShortLivedCache(lifetime: lifetime)
        misses = ShortLivedCache(lifetime: lifetime)
    }

    func value(_ secret: String, lookup: () async throws -> Value?) async throws -> Value? {
        if let hit = found.lookup(secret) { return hit }
        if misses.lookup(secret) != nil { return nil }
        let value = try await lookup()
        if let value { found.remember(secret, value) } else { misses.remember(secret, true) }
        return value
    }
}
