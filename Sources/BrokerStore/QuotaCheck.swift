import BrokerCore
import Foundation
import PostgresClient

/// Tenant quotas are a constraint of the `tenant_usage` counters (migration 5): a
/// statement that would raise a tenant's usage past its quota fails with SQLSTATE GB003
/// (`quotaExceeded`, mapped in `StoreError`), whose message says which limit. Batched
/// grants are checked in the batch statement, which leaves out those that would not fit.
/// Monthly budgets likewise (migration 10, GB004, `BudgetCheck.swift`).
enum QuotaCheck {
}

/// What a grant needs to know about its tenant, read in one round trip.
struct TenantSettings: Sendable {
    var policies: [NamedPolicy]
    /// md5 of `gpb_tenant_policies`: a batched grant is skipped when its tenant's
    /// policies no longer have it (migration 3).
    var policiesVersion: String
    /// The tenant has a monthly budget (migration 10).
    var budgeted: Bool

    static func load(_ c: PostgresConnection, tenantId: UUID) throws -> TenantSettings {
        let rows = try c.query(
            """
            SELECT p.policies::text AS policies, md5(p.policies::text) AS policies_version,
                   gpb_has_budget(t.quota) AS budgeted
            FROM tenants t, gpb_tenant_policies(t.id) AS p (policies) WHERE t.id = $1
            """,
            [tenantId])
        guard let row = rows.first else { throw StoreError.notFound("tenant \(tenantId.lowercased) not found") }
        return TenantSettings(
            policies: try row.decodeJSON("policies"), policiesVersion: try row.decode("policies_version"),
            budgeted: try row.decode("budgeted"))
    }
}
