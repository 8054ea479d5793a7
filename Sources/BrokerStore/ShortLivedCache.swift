import Synchronization

/// Values reused for a short while, to spare a database round trip on every request.
/// Whoever changes what a value was read from calls `forget`; other brokers' changes
/// show once the entry expires, or sooner where the database checks what was used.
final class ShortLivedCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private struct Entry {
        var value: Value
        var expires: ContinuousClock.Instant
    }

    let lifetime: Duration
    private let entries = Mutex<[Key: Entry]>([:])
    private static var maxEntries: Int { 10_000 }

    init(lifetime: Duration) {
        self.lifetime = lifetime
    }

    func lookup(_ key: Key) -> Value? {
        let now = ContinuousClock.now
        return entries.withLock { entries in
            guard let entry = entries[key] else { return nil }
            if entry.expires > now { return entry.value }
            entries[key] = nil
            return nil
        }
    }

    func remember(_ key: Key, _ value: Value) {
        guard lifetime > .zero else { return }
        let entry = Entry(value: value, expires: .now + lifetime)
        entries.withLock { entries in
            if entries.count >= Self.maxEntries { entries.removeAll(keepingCapacity: true) }
            entries[key] = entry
        }
    }

    func forget(_ key: Key) {
        entries.withLock { $0[key] = nil }
    }

    func forget(where matches: (Value) -> Bool) {
        entries.withLock { entries in entries = entries.filter { !matches($0.value.value) } }
    }
}
