import BrokerCore
import Foundation
import PostgresClient

/// A tenant's count of one limited kind of thing (`ResourceLimits`), checked before it
/// creates one more: under a transaction lock of the tenant's own for that kind, so that
/// two creations at once (on any broker) cannot both pass the limit. Call it inside the
/// transaction that creates.
enum TenantLimits {
    /// Refuses with `limitExceeded` when `held` (a query answering `n`) reaches `limit`.
    static func check(
        _ c: PostgresConnection, _ name: ResourceLimits.Name, tenantId: UUID?, limit: Int, held: String,
        _ binds: [any PostgresEncodable]
    ) throws {
        try c.query(
            "SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || coalesce($2::text, 'admin'), 0))",
            [name.rawValue, tenantId])
        let count: Int = try c.query(held, binds)[0].decode("n")
        if count >= limit { throw StoreError.limitExceeded(name, limit) }
    }
}
