import BrokerCore
import Foundation
import PostgresClient

/// A named token of a tenant, as listed: never its secret, shown once at creation.
public struct APIToken: Codable, Sendable, Equatable {
    public var id: ResourceID
    public var name: String
    public var role: Role
    /// nil: all the role allows.
    public var scopes: [TokenScope]?
    public var expiresAt: Date?
    /// Recorded at most once a minute: within a minute of the true last use.
    public var lastUsedAt: Date?
    public var createdAt: Date
    /// `Caller.who` of whoever made it.
    public var createdBy: String
}

/// A named token with its tenant: what authenticates a request.
public struct NamedToken: Sendable {
    public var tenant: Tenant
    public var token: APIToken
}

/// Named tokens (migration 18): made and revoked by a tenant's tenant-admin, stored as
/// their SHA-256. Their secrets carry their own prefix, so that authentication asks this
/// store only for them and the tenants' own tokens cost what they did.
public struct APITokenStore: Sendable {
    public static let secretPrefix = "gpbt_"

    let pool: PostgresPool
    /// Lookups, found or not, reused for as long as `TenantStore`'s: a token revoked
    /// through another broker stops working within that time.
    let cache: ShortLivedCache<String, NamedToken>
    let misses: ShortLivedCache<String, Bool>

    public init(sharingPoolOf tenants: TenantStore) {
        pool = tenants.pool
        cache = ShortLivedCache(lifetime: tenants.cache.lifetime)
        misses = ShortLivedCache(lifetime: tenants.cache.lifetime)
    }

    static let columns = """
        id AS token_id, name AS token_name, role, scopes, expires_at, last_used_at, created_at AS token_created_at, created_by
        """

    /// The tenant's tokens are counted under a lock of its own, so two creations at once
    /// cannot both pass `limit`.
    public func create(tenantId: UUID, _ spec: TokenSpec, createdBy: String, limit: Int) async throws -> (token: APIToken, secret: String) {
        let secret = TenantStore.newToken(prefix: Self.secretPrefix)
        let token = try await StoreError.translating {
            try await pool.withTransaction { c in
                try c.query("SELECT pg_advisory_xact_lock(hashtextextended('api_tokens:' || $1::text, 0))", [tenantId])
                let held: Int = try c.query("SELECT count(*)::int AS n FROM api_tokens WHERE tenant_id = $1", [tenantId])[0].decode("n")
                if held >= limit { throw StoreError.limitExceeded(.tokensPerTenant, limit) }
                return try Self.decode(
                    c.query(
                        """
                        INSERT INTO api_tokens (id, tenant_id, name, role, scopes, token_hash, expires_at, created_by)
                        VALUES ($1, $2, $3, $4, $5, sha256(convert_to($6, 'UTF8')),
                                now() + make_interval(secs => $7::int), $8)
                        RETURNING \(Self.columns)
                        """,
                        [UUID.timeOrdered(), tenantId, spec.name, spec.role.rawValue, spec.scopes?.map(\.rawValue), secret,
                         spec.expiresInSeconds, createdBy])[0])
            }
        }
        return (token, secret)
    }

    public func list(tenantId: UUID) async throws -> [APIToken] {
        try await StoreError.translating {
            try await pool.withConnection { c in
                try c.query("SELECT \(Self.columns) FROM api_tokens WHERE tenant_id = $1 ORDER BY created_at, id", [tenantId])
                    .map(Self.decode)
            }
        }
    }

    /// Deletes the token: it stops working at once on this broker.
    public func revoke(tenantId: UUID, id: UUID) async throws {
        let deleted = try await StoreError.translating {
            try await pool.withConnection { c in
                try c.query("DELETE FROM api_tokens WHERE id = $1 AND tenant_id = $2 RETURNING id", [id, tenantId]).count
            }
        }
        guard deleted == 1 else { throw StoreError.notFound("token '\(id)' not found") }
        cache.forget { $0.token.id.uuid == id }
    }

    /// The token of a secret this process looked up moments ago, without a round trip.
    public func cached(secret: String) -> NamedToken? {
        cache.lookup(secret)
    }

    /// The tenant and token of a secret that has neither expired nor been revoked. The
    /// same statement records the use, at most once a minute per token, so that a busy
    /// token costs no write per request.
    public func authenticate(secret: String) async throws -> NamedToken? {
        if let cached = cache.lookup(secret) { return cached }
        if misses.lookup(secret) != nil { return nil }
        let found = try await StoreError.translating {
            try await pool.withConnection { c in
                try c.query(
                    """
                    WITH found AS (
                        SELECT * FROM api_tokens
                        WHERE token_hash = sha256(convert_to($1, 'UTF8')) AND (expires_at IS NULL OR expires_at > now())
                    ), used AS (
                        UPDATE api_tokens SET last_used_at = now()
                        WHERE id = (SELECT id FROM found)
                          AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
                    )
                    SELECT t.id, t.name, t.quota::text AS quota, t.created_at, t.updated_at,
                           k.id AS token_id, k.name AS token_name, k.role, k.scopes, k.expires_at, k.last_used_at,
                           k.created_at AS token_created_at, k.created_by
                    FROM found k JOIN tenants t ON t.id = k.tenant_id
                    """,
                    [secret]
                ).first.map { NamedToken(tenant: try TenantStore.decode($0), token: try Self.decode($0)) }
            }
        }
        if let found { cache.remember(secret, found) } else { misses.remember(secret, true) }
        return found
    }

    static func decode(_ row: PostgresRow) throws -> APIToken {
        let scopes: [String]? = try row.decodeIfPresent("scopes")
        return APIToken(
            id: try row.decode("token_id"), name: try row.decode("token_name"), role: try enumValue(row, "role"),
            scopes: try scopes?.map { raw in
                guard let scope = TokenScope(rawValue: raw) else { throw UnknownEnumValue(column: "scopes", value: raw) }
                return scope
            },
            expiresAt: try row.decodeIfPresent("expires_at"), lastUsedAt: try row.decodeIfPresent("last_used_at"),
            createdAt: try row.decode("token_created_at"), createdBy: try row.decode("created_by"))
    }
}
