import BrokerCore
import Foundation
import Synchronization

/// Who signed in: the console asks the API which kind of token it was given.
enum Role: Sendable, Equatable {
    case admin, tenant
}

/// A message shown once on the next page (after a form's redirect).
struct Flash: Sendable, Equatable {
    enum Kind: String, Sendable { case info, error, secret }
    var kind: Kind
    var text: String
    /// For `secret`: a value shown once (a new tenant token), in its own box.
    var value: String? = nil
}

/// A signed-in browser. The token stays here, on the server; the browser holds only `id`.
struct Session: Sendable {
    var id: String
    var token: String
    var role: Role
    /// The synchronizer token every changing form carries.
    var csrf: String
    var lastSeen: Date
    var flashes: [Flash] = []
}

/// Sessions in this process's memory: a restart signs everyone out, and several brokers
/// behind one address need sticky routing for the console (the API itself stays stateless).
/// Idle sessions end after `idleLimit`. One token (one tenant, or the admin) holds at most
/// `perToken` sessions: signing in once more ends its own least recently seen one, never
/// another user's. Past `capacity` sessions in all, sign-ins are refused.
final class SessionStore: Sendable {
    private let sessions = Mutex<[String: Session]>([:])
    let idleLimit: TimeInterval
    let capacity: Int
    let perToken: Int

    init(
        idleLimit: TimeInterval = 8 * 3600, capacity: Int = 10_000,
        perToken: Int = ResourceLimits.Name.sessionsPerTenant.defaultValue
    ) {
        self.idleLimit = idleLimit
        self.capacity = capacity
        self.perToken = perToken
    }

    /// 256 random bits, hex: session ids and CSRF tokens.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in
            let word: UInt64 = generator.next()
            let hex = String(word, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }

    /// nil: `capacity` sessions are signed in (none idle), the new one is refused.
    func create(token: String, role: Role, now: Date = Date()) -> Session? {
        let session = Session(id: Self.randomToken(), token: token, role: role, csrf: Self.randomToken(), lastSeen: now)
        return sessions.withLock { all in
            all = all.filter { now.timeIntervalSince($0.value.lastSeen) < idleLimit }
            let own = all.filter { $0.value.token == token }
            if own.count >= perToken, let oldest = own.min(by: { $0.value.lastSeen < $1.value.lastSeen }) {
                all[oldest.key] = nil
            }
            guard all.count < capacity else { return nil }
            all[session.id] = session
            return session
        }
    }

    /// The live session with this id, marked as seen now.
    func session(_ id: String, now: Date = Date()) -> Session? {
        sessions.withLock { all in
            guard var session = all[id] else { return nil }
            guard now.timeIntervalSince(session.lastSeen) < idleLimit else {
                all[id] = nil
                return nil
            }
            session.lastSeen = now
            all[id] = session
            return session
        }
    }

    func end(_ id: String) {
        _ = sessions.withLock { $0.removeValue(forKey: id) }
    }

    func addFlash(_ id: String, _ flash: Flash) {
        sessions.withLock { $0[id]?.flashes.append(flash) }
    }

    func takeFlashes(_ id: String) -> [Flash] {
        sessions.withLock { all in
            let flashes = all[id]?.flashes ?? []
            all[id]?.flashes = []
            return flashes
        }
    }
}
