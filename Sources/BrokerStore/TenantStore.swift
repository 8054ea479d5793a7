import BrokerCore
import Foundation
import PostgresClient
import Synchronization

public struct Tenant: Codable, Sendable, Equatable {
    public var id: ResourceID
    public var name: String
    public var quota: TenantQuota
    public var createdAt: Date
    public var updatedAt: Date
}

/// API clients. Tokens are shown once at creation or rotation and stored only as
/// their SHA-256: a stolen database does not hand out working tokens.
public struct TenantStore: Sendable {
    let pool: PostgresPool
    /// Token lookups: authentication is otherwise one round trip on every request.
    let cache: ShortLivedCache<String, Tenant>
    /// Unknown tokens, for as long: a client retrying a bad token (or guessing)
    /// costs no round trip each time.
    let misses: ShortLivedCache<String, Bool>

    /// `cacheSeconds`: how long a token lookup, found or not, is reused by this
    /// process. A token rotated through this process stops working at once; through
    /// another broker, within that many seconds. New tokens are random, so a miss
    /// never hides one.
    public init(pool: PostgresPool, cacheSeconds: Double = 1) {
        self.pool = pool
        self.cache = ShortLivedCache(lifetime: .milliseconds(Int64(cacheSeconds * 1000)))
        self.misses = ShortLivedCache(lifetime: .milliseconds(Int64(cacheSeconds * 1000)))
    }

    static let columns = "id, name, quota::text AS quota, created_at, updated_at"

    public func create(name: String, quota: TenantQuota) async throws -> (tenant: Tenant, token: String) {
        let token = Self.newToken()
        let tenant = try await StoreError.translating {
            try await pool.withConnection { c in
                try Self.decode(
                    c.query(
                        """
                        INSERT INTO tenants (id, name, token_hash, quota)
                        VALUES ($1, $2, sha256(convert_to($3, 'UTF8')), $4::jsonb)
                        RETURNING \(Self.columns)
                        """,
                        [UUID.timeOrdered(), name, token, try PostgresJSON(quota)])[0])
            }
        }
        return (tenant, token)
    }

    public func list() async throws -> [Tenant] {
        try await StoreError.translating {
            try await pool.withConnection { c in
                try c.query("SELECT \(Self.columns) FROM tenants ORDER BY created_at, id").map(Self.decode)
            }
        }
    }

    public func get(id: UUID) async throws -> Tenant {
        try await StoreError.translating {
            try await pool.withConnection { c in
                guard let row = try c.query("SELECT \(Self.columns) FROM tenants WHERE id = $1", [id]).first else {
                    throw StoreError.notFound("tenant '\(id)' not found")
                }
                return try Self.decode(row)
            }
        }
    }

    /// `quota`'s limits replace the tenant's, `removedLimits` become unlimited, the rest stay.
    public func update(id: UUID, name: String?, quota: TenantQuota?, removedLimits: [String] = []) async throws -> Tenant {
        let tenant = try await StoreError.translating {
            try await pool.withConnection { c in
                let rows = try c.query(
                    """
                    UPDATE tenants SET name = coalesce($2, name),
                           quota = (quota || coalesce($3::jsonb, '{}')) - $4::text[], updated_at = now()
                    WHERE id = $1 RETURNING \(Self.columns)
                    """,
                    [id, name, try quota.map { try PostgresJSON($0) }, removedLimits])
                guard let row = rows.first else { throw StoreError.notFound("tenant '\(id)' not found") }
                return try Self.decode(row)
            }
        }
        cache.forget { $0.id == tenant.id }
        return tenant
    }

    /// Issues a new token and revokes the previous one in the same statement.
    public func rotateToken(id: UUID) async throws -> (tenant: Tenant, token: String) {
        let token = Self.newToken()
        let tenant = try await StoreError.translating {
            try await pool.withConnection { c in
                let rows = try c.query(
                    """
                    UPDATE tenants SET token_hash = sha256(convert_to($2, 'UTF8')), updated_at = now()
                    WHERE id = $1 RETURNING \(Self.columns)
                    """,
                    [id, token])
                guard let row = rows.first else { throw StoreError.notFound("tenant '\(id)' not found") }
                return try Self.decode(row)
            }
        }
        cache.forget { $0.id == tenant.id }
        return (tenant, token)
    }

    /// The tenant of a token this process looked up moments ago, without a round trip.
    public func cached(token: String) -> Tenant? {
        cache.lookup(token)
    }

    /// The tenant holding this bearer token, if any. The lookup is by hash, so the
    /// comparison never touches the token's bytes one by one.
    public func authenticate(token: String) async throws -> Tenant? {
        if let cached = cache.lookup(token) { return cached }
        if misses.lookup(token) != nil { return nil }
        let found = try await StoreError.translating {
            try await pool.withConnection { c in
                try c.query(
                    "SELECT \(Self.columns) FROM tenants WHERE token_hash = sha256(convert_to($1, 'UTF8'))",
                    [token]
                ).first.map(Self.decode)
            }
        }
        if let found { cache.remember(token, found) } else { misses.remember(token, true) }
        return found
    }

    static func decode(_ row: PostgresRow) throws -> Tenant {
        Tenant(
            id: try row.decode("id"), name: try row.decode("name"), quota: try row.decodeJSON("quota"),
            createdAt: try row.decode("created_at"), updatedAt: try row.decode("updated_at"))
    }

    /// 256 random bits from the system's CSPRNG, hex-encoded, with a recognisable prefix.
    static func newToken(prefix: String = "gpb_") -> String {
        var generator = SystemRandomNumberGenerator()
        let words = (0..<4).map { _ in generator.next() as UInt64 }
        return prefix + words.map { String(format: "%016llx", $0) }.joined()
    }
}
