import BrokerCore
import Foundation
import PostgresClient

// Recovery (issue 29): an allocation that asked to `recover` gets the replicas it lost to
// preemption, an interruption or a failed start placed again at once, in the same
// transaction as the loss, by the same planner under the same placement, price cap and
// budget, in another region if its own is out. Without `recover` it stays shrunk, and
// its decisions say why (the loss's own decision).
extension AllocationStore {
    /// Re-places what each live allocation that asked for it has lost, as many replicas as
    /// fit now (never preempting: a recovery takes no one else's capacity); each in a
    /// savepoint, so a refusal (its quota, its budget, a lost race) leaves it shrunk with
    /// a decision saying why and the loss stands.
    static func recover(_ c: PostgresConnection, allocationIds: [UUID]) throws {
        for id in Set(allocationIds).sorted(by: { $0.uuidString < $1.uuidString }) {
            try c.query("SAVEPOINT recovery")
            do {
                try recoverOne(c, id: id)
                try c.query("RELEASE SAVEPOINT recovery")
            } catch {
                try c.query("ROLLBACK TO SAVEPOINT recovery")
                try c.query(
                    """
                    UPDATE allocations SET decisions = decisions || $2::jsonb, updated_at = clock_timestamp()
                    WHERE id = $1 AND status IN ('active', 'partial')
                    """,
                    [id, try PostgresJSON([PlacementDecision(region: "*", replicas: 0, reason: "not recovered: \(Self.reason(error))")])])
            }
        }
    }

    /// Recovers the allocations of preempted instances `seqs` (they stopped at once).
    static func recoverVictims(_ c: PostgresConnection, instanceSeqs seqs: [Int64]) throws {
        if seqs.isEmpty { return }
        try recover(
            c,
            allocationIds: try c.query(
                "SELECT DISTINCT allocation_id FROM instances WHERE seq = ANY($1::bigint[]) AND state = 'preempted'",
                [seqs.map(String.init)]
            ).map { try $0.decode("allocation_id") })
    }

    private static func recoverOne(_ c: PostgresConnection, id: UUID) throws {
        let rows = try c.query(
            """
            SELECT request::text AS request, replicas, placed_replicas FROM allocations
            WHERE id = $1 AND status IN ('active', 'partial')
            FOR UPDATE
            """,
            [id])
        guard let row = rows.first else { return }
        var request: AllocationRequest = try row.decodeJSON("request")
        guard request.recovers else { return }
        let missing = try row.decode("replicas", as: Int.self) - (try row.decode("placed_replicas", as: Int.self))
        guard missing > 0 else { return }
        request.allOrNothing = false  // as many as fit now
        let held = try c.query(
            "SELECT region_id, unit FROM instances WHERE allocation_id = $1 AND state IN ('running', 'preempting')", [id]
        ).map { (try $0.decode("region_id", as: String.self), try $0.decodeIfPresent("unit", as: Int.self)) }
        var input = GrantInput(request: request, replicas: missing, inventory: try InventoryStore.snapshot(c, fitting: request.shape))
        input.held = HeldReplicas.counting(held)
        let plan = GrantPlanner.plan(input)
        var decisions = plan.decisions
        var placed = 0
        if plan.outcome == .grant {
            try QuotaCheck.verifyPriceCap(c, plan.request, try reserve(c, allocationId: id, rows: plan.rows, actor: "recovery"))
            placed = plan.placement.placed
        }
        decisions.append(PlacementDecision(region: "*", replicas: placed, reason: "recovered \(placed) of \(missing) lost replica\(missing == 1 ? "" : "s")"))
        try c.query(
            """
            UPDATE allocations
            SET placed_replicas = placed_replicas + $2,
                status = CASE WHEN placed_replicas + $2 = replicas THEN 'active' ELSE 'partial' END,
                decisions = decisions || $3::jsonb, updated_at = clock_timestamp()
            WHERE id = $1
            """,
            [id, placed, try PostgresJSON(decisions)])
    }

    private static func reason(_ error: any Error) -> String {
        switch error {
        case let error as PostgresError where error.sqlState == .quotaExceeded: "over the tenant's quota"
        case let error as PostgresError where error.sqlState == .budgetExceeded: "over the tenant's budget"
        case let error as StoreError: "\(error)"
        case is LostRace: "capacity moved meanwhile"
        default: "an internal error"
        }
    }
}
