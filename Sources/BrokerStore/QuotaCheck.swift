import BrokerCore
import Foundation
import PostgresClient

/// A tenant's quota, checked inside the grant's transaction. The tenant row is
/// locked first, so two concurrent grants of one tenant cannot both pass the check
/// and exceed the quota together; tenants without a quota skip the lock. Use counts
/// what the tenant asked for per replica, not the larger instance it may land on.
enum QuotaCheck {
    static func verify(
        _ c: PostgresConnection, tenantId: UUID, quota: TenantQuota, adding replicas: Int, shape: ComputeShape
    ) throws {
        if quota.isUnlimited { return }
        try c.query("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", [tenantId])
        let used = try c.query(
            """
            SELECT count(*)::int AS instances,
                   coalesce(sum((a.request->'shape'->>'gpuCount')::int), 0)::int AS gpus,
                   coalesce(sum((a.request->'shape'->>'cpu')::float8), 0)::float8 AS cpu,
                   coalesce(sum((a.request->'shape'->>'memoryGiB')::float8), 0)::float8 AS memory
            FROM instances i JOIN allocations a ON a.id = i.allocation_id
            WHERE a.tenant_id = $1 AND i.state = 'running'
            """,
            [tenantId])[0]
        let usedInstances: Int = try used.decode("instances")
        let checks: [(String, Double?, Double, Double)] = [
            ("instances", quota.instances.map(Double.init), Double(usedInstances), Double(replicas)),
            ("gpus", quota.gpus.map(Double.init), Double(try used.decode("gpus") as Int), Double(replicas * shape.gpuCount)),
            ("cpu", quota.cpu, try used.decode("cpu"), Double(replicas) * shape.cpu),
            ("memoryGiB", quota.memoryGiB, try used.decode("memory"), Double(replicas) * shape.memoryGiB),
        ]
        for (name, limit, inUse, adding) in checks {
            if let limit, inUse + adding > limit + 1e-9 {
                throw StoreError.quotaExceeded(
                    "quota \(name): \(format(inUse)) in use + \(format(adding)) requested exceeds the limit of \(format(limit))")
            }
        }
    }

    private static func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}

/// What a grant needs to know about its tenant, read in one round trip.
struct TenantSettings: Sendable {
    var quota: TenantQuota
    var policies: [NamedPolicy]
    /// md5 of `gpb_tenant_policies`: a batched grant is skipped when its tenant's
    /// policies no longer have it (migration 3).
    var policiesVersion: String

    static func load(_ c: PostgresConnection, tenantId: UUID) throws -> TenantSettings {
        let rows = try c.query(
            """
            SELECT t.quota::text AS quota, p.policies::text AS policies, md5(p.policies::text) AS policies_version
            FROM tenants t, gpb_tenant_policies(t.id) AS p (policies) WHERE t.id = $1
            """,
            [tenantId])
        guard let row = rows.first else { throw StoreError.notFound("tenant \(tenantId.lowercased) not found") }
        return TenantSettings(
            quota: try row.decodeJSON("quota"), policies: try row.decodeJSON("policies"),
            policiesVersion: try row.decode("policies_version"))
    }
}
