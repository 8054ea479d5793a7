import BrokerCore
import Foundation
import JSON
import PostgresClient

/// A monthly budget (`spendPerMonth`, `gpuHoursPerMonth`) a change would pass, as the
/// database worked it out (migration 10, `gpb_budget_problem`): the problem answer's
/// extension members (`budget`, `month`, `limit`, `used`, `requested`, `remaining`)
/// and its detail.
public struct BudgetShortfall: Sendable, Equatable {
    public var budget: String
    public var members: [String: JSONValue]
    public var detail: String

    /// From the problem's JSON: the detail of SQLSTATE GB004, or a `gpb_grant_costs` row.
    init?(json: String) {
        guard var members = (try? JSONValue.parse(json))?.objectValue,
            let budget = members["budget"]?.stringValue, let detail = members.removeValue(forKey: "detail")?.stringValue
        else { return nil }
        self.budget = budget
        self.members = members
        self.detail = detail
    }

    /// Whether the request could fit once budget frees: it asks no more than the whole budget.
    var mayFitLater: Bool {
        guard let requested = members["requested"]?.numberValue, let limit = members["limit"]?.numberValue else { return false }
        return requested <= limit
    }
}

extension QuotaCheck {
    /// Why a batched grant was left out, as the tenant's usage, counters and the pools'
    /// prices stand now: the quota or budget it would pass, or nil (it lost a race, or a
    /// price rose past its cap: plan it again from fresh inventory).
    static func refusal(_ c: PostgresConnection, _ reservation: GrantReservation) throws -> StoreError? {
        let row = try c.query(
            """
            SELECT gpb_quota_problem(t.quota, u, gpb_usage_of(g.tenant_id, g.request, g.placed_replicas)) AS quota,
                   c.problem::text AS budget
            FROM \(GrantReservation.one) AS g JOIN tenants t ON t.id = g.tenant_id
            JOIN tenant_usage u ON u.tenant_id = g.tenant_id, gpb_grant_costs(ARRAY[g]) c
            """,
            [reservation.json]
        ).first
        if let quota: String = try row?.decodeIfPresent("quota") { return .quotaExceeded(quota) }
        return try budgetRefusal(row)
    }

    private static func budgetRefusal(_ row: PostgresRow?) throws -> StoreError? {
        guard let json: String = try row?.decodeIfPresent("budget"), let shortfall = BudgetShortfall(json: json) else {
            return nil
        }
        return .budgetExceeded(shortfall)
    }

    /// A price cap checked again after the reservation locked its pools (their prices
    /// then hold until commit): a pool above it now means the plan read a price since
    /// raised, so the grant is planned again (`LostRace`).
    static func verifyPriceCap(_ c: PostgresConnection, _ request: AllocationRequest, _ instances: [InstanceView]) throws {
        guard let cap = GrantPlanner.effectiveShape(request).maxPricePerHour, !instances.isEmpty else { return }
        let over = try c.query(
            """
            SELECT EXISTS (SELECT 1 FROM pools WHERE (region_id, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
                                                 AND price_per_hour > $3) AS over
            """,
            [instances.map(\.region), instances.map(\.poolId), cap])
        if try over[0].decode("over", as: Bool.self) { throw AllocationStore.LostRace() }
    }
}
