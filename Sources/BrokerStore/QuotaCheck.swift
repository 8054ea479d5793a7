import BrokerCore
import Foundation
import PostgresClient

/// Tenant quotas are a constraint of the `tenant_usage` counters (migration 5): a
/// statement that would raise a tenant's usage past its quota fails with SQLSTATE GB003
/// (`quotaExceeded`, mapped in `StoreError`), whose message says which limit. Batched
/// grants are checked in the batch statement, which leaves out those that would not fit.
enum QuotaCheck {
    /// The limit a batched grant that was left out would exceed as its tenant's usage
    /// stands now, or nil when none (it lost a race: plan it again).
    static func problem(_ c: PostgresConnection, _ reservation: GrantReservation) throws -> String? {
        try c.query(
            """
            SELECT gpb_quota_problem(t.quota, u, d) AS problem
            FROM gpb_grant_demand($1::jsonb) d JOIN tenants t ON t.id = d.tenant_id
            JOIN tenant_usage u ON u.tenant_id = d.tenant_id
            """,
            [PostgresJSON(rawJSON: String(decoding: reservation.allocation, as: UTF8.self))]
        ).first?.decodeIfPresent("problem")
    }
}

/// What a grant needs to know about its tenant, read in one round trip.
struct TenantSettings: Sendable {
    var policies: [NamedPolicy]
    /// md5 of `gpb_tenant_policies`: a batched grant is skipped when its tenant's
    /// policies no longer have it (migration 3).
    var policiesVersion: String

    static func load(_ c: PostgresConnection, tenantId: UUID) throws -> TenantSettings {
        let rows = try c.query(
            """
            SELECT p.policies::text AS policies, md5(p.policies::text) AS policies_version
            FROM tenants t, gpb_tenant_policies(t.id) AS p (policies) WHERE t.id = $1
            """,
            [tenantId])
        guard let row = rows.first else { throw StoreError.notFound("tenant \(tenantId.lowercased) not found") }
        return TenantSettings(
            policies: try row.decodeJSON("policies"), policiesVersion: try row.decode("policies_version"))
    }
}
