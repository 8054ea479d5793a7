import BrokerCore
import Foundation
import PostgresClient

/// A tenant's named placement policies: the ResourcePolicy of the seeds, chosen for a
/// request by its labels.
public struct PolicyStore: Sendable {
    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    /// Creates or replaces the policy; a new one past `limit` policies is refused
    /// (`TenantLimits`), a replaced one never is.
    public func put(tenantId: UUID, _ policy: NamedPolicy, limit: Int) async throws -> (policy: NamedPolicy, created: Bool) {
        try await StoreError.translating {
            try await pool.withTransaction { c in
                try TenantLimits.check(
                    c, .policiesPerTenant, tenantId: tenantId, limit: limit,
                    held: "SELECT count(*)::int AS n FROM policies WHERE tenant_id = $1 AND name <> $2", [tenantId, policy.name])
                let rows = try c.query(
                    """
                    INSERT INTO policies (tenant_id, name, selector, policy) VALUES ($1, $2, $3::jsonb, $4::jsonb)
                    ON CONFLICT (tenant_id, name) DO UPDATE
                        SET selector = excluded.selector, policy = excluded.policy, updated_at = now()
                    RETURNING (xmax = 0) AS created
                    """,
                    [tenantId, policy.name, try PostgresJSON(policy.selector), try PostgresJSON(policy.policy)])
                return (policy, try rows[0].decode("created"))
            }
        }
    }

    public func get(tenantId: UUID, name: String) async throws -> NamedPolicy {
        try await StoreError.translating {
            try await pool.withConnection { c in
                guard let found = try Self.policies(c, tenantId: tenantId, name: name).first else {
                    throw StoreError.notFound("policy '\(name)' not found")
                }
                return found
            }
        }
    }

    public func list(tenantId: UUID) async throws -> [NamedPolicy] {
        try await StoreError.translating {
            try await pool.withConnection { c in try Self.policies(c, tenantId: tenantId) }
        }
    }

    public func delete(tenantId: UUID, name: String) async throws {
        try await StoreError.translating {
            try await pool.withConnection { c in
                let rows = try c.query(
                    "DELETE FROM policies WHERE tenant_id = $1 AND name = $2 RETURNING name", [tenantId, name])
                if rows.isEmpty { throw StoreError.notFound("policy '\(name)' not found") }
            }
        }
    }

    static func policies(_ c: PostgresConnection, tenantId: UUID, name: String? = nil) throws -> [NamedPolicy] {
        try c.query(
            """
            SELECT name, selector::text AS selector, policy::text AS policy FROM policies
            WHERE tenant_id = $1 AND ($2::text IS NULL OR name = $2) ORDER BY name
            """,
            [tenantId, name]
        ).map { row in
            NamedPolicy(
                name: try row.decode("name"), selector: try row.decodeJSON("selector"),
                policy: try row.decodeJSON("policy"))
        }
    }
}
