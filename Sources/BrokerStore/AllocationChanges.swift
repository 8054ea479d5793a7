import BrokerCore
import Foundation
import PostgresClient

// Scaling, renewal and release of an allocation, each one transaction.
extension AllocationStore {
    /// Scales out with the allocation's own placement (unit `max` counts what it
    /// holds) or scales in, releasing the last unit's instances first, newest first.
    public func scale(tenantId: UUID, id: UUID, replicas: Int, actor: String) async throws -> AllocationView {
        try await retryingLostRaces {
            try await pool.withTransaction { c in try Self.scale(c, tenantId: tenantId, id: id, replicas: replicas, actor: actor) }
        }
    }

    /// Scales in the caller's transaction; `planned` sees a scale-out's plan first.
    static func scale(
        _ c: PostgresConnection, tenantId: UUID, id: UUID, replicas: Int, actor: String,
        planned: (GrantPlan) -> Void = { _ in }
    ) throws -> AllocationView {
        let request = try Self.lockLive(c, id: id, tenantId: tenantId)
        let live = try Self.runningInstances(c, allocationId: id)
        var placed = live.count
        var decisions: [PlacementDecision]? = nil
        if replicas > live.count {
            var input = GrantInput(
                request: request, replicas: replicas - live.count, inventory: try InventoryStore.snapshot(c, fitting: request.shape))
            input.held = HeldReplicas.counting(live.map { ($0.region, $0.unit) })
            let plan = try Self.planWithPreemption(c, input)
            planned(plan)
            guard plan.outcome == .grant else {
                throw StoreError.insufficientCapacity(plan.shortfall, decisions: plan.decisions)
            }
            try Self.preempt(c, instanceSeqs: plan.victims, for: id, actor: actor)
            try QuotaCheck.verifyPriceCap(
                c, plan.request, try Self.reserve(c, allocationId: id, rows: plan.rows, actor: actor))
            placed += plan.placement.placed
            decisions = plan.decisions
        } else if replicas < live.count {
            let chosen = ScaleInSelector.select(
                live.map { .init(id: String($0.seq), unit: $0.unit, sequence: $0.seq) },
                releasing: live.count - replicas)
            try Self.release(c, instanceSeqs: chosen.compactMap { Int64($0) }, kind: "released", actor: actor)
            placed = replicas
            let released = Set(chosen)
            decisions = ScaleInDecisions.after(
                try Self.decisions(c, id: id), before: live.map(\.region),
                after: live.filter { !released.contains(String($0.seq)) }.map(\.region), replicas: replicas)
        }
        try c.query(
            """
            UPDATE allocations SET replicas = $2, placed_replicas = $3, status = $4,
                   decisions = coalesce($5::jsonb, decisions), updated_at = clock_timestamp()
            WHERE id = $1
            """,
            [id, replicas, placed, (placed == replicas ? AllocationStatus.active : .partial).rawValue,
             try decisions.map { try PostgresJSON($0) }])
        return try Self.load(c, id: id, tenantId: tenantId)
    }

    /// Extends the lease from now. An allocation whose lease already ran out is
    /// expired, even if the reconciler has not got to it yet.
    public func renew(tenantId: UUID, id: UUID, leaseSeconds: Int?, actor: String) async throws -> AllocationView {
        try await StoreError.translating {
            try await pool.withTransaction { c in
                try Self.renew(c, tenantId: tenantId, id: id, leaseSeconds: leaseSeconds, actor: actor)
            }
        }
    }

    /// Renews in the caller's transaction.
    static func renew(_ c: PostgresConnection, tenantId: UUID, id: UUID, leaseSeconds: Int?, actor: String) throws -> AllocationView {
        let rows = try c.query(
            """
            UPDATE allocations
            SET lease_seconds = coalesce($3, lease_seconds),
                lease_expires_at = now() + make_interval(secs => coalesce($3, lease_seconds)),
                updated_at = clock_timestamp()
            WHERE id = $1 AND tenant_id = $2 AND status IN ('active', 'partial') AND lease_expires_at > now()
            RETURNING id
            """,
            [id, tenantId, leaseSeconds])
        if rows.isEmpty {
            let current = try Self.requireOwned(c, id: id, tenantId: tenantId)
            throw StoreError.conflict(
                current == .active || current == .partial
                    ? "allocation \(id.lowercased) lease has run out" : "allocation \(id.lowercased) is \(current.rawValue)")
        }
        try c.query(
            "INSERT INTO ledger (kind, allocation_id, delta, actor) VALUES ('renewed', $1, 0, $2)", [id, actor])
        return try Self.load(c, id: id, tenantId: tenantId)
    }

    /// Releases every instance (they turn idle, warm, for their pool's deferral).
    public func release(tenantId: UUID, id: UUID, actor: String) async throws -> AllocationView {
        try await StoreError.translating {
            try await pool.withTransaction { c in
                let rows = try c.query(
                    "SELECT status FROM allocations WHERE id = $1 AND tenant_id = $2 FOR UPDATE", [id, tenantId])
                guard let row = rows.first else { throw StoreError.notFound("allocation \(id.lowercased) not found") }
                let status: AllocationStatus = try enumValue(row, "status")
                guard [.active, .partial, .pending].contains(status) else {
                    throw StoreError.conflict("allocation \(id.lowercased) is already \(status.rawValue)")
                }
                let live = try Self.runningInstances(c, allocationId: id)
                try Self.release(c, instanceSeqs: live.map(\.seq), kind: "released", actor: actor)
                try c.query(
                    """
                    UPDATE allocations SET status = 'released', placed_replicas = 0, lease_expires_at = NULL,
                           updated_at = clock_timestamp()
                    WHERE id = $1
                    """, [id])
                return try Self.load(c, id: id, tenantId: tenantId)
            }
        }
    }

    /// Takes running instances out of service: idle (warm) when their pool defers
    /// scale-in, else released at once with their capacity returned. One statement
    /// updates instances, pool counters and the ledger together.
    static func release(_ c: PostgresConnection, instanceSeqs: [Int64], kind: String, actor: String) throws {
        if instanceSeqs.isEmpty { return }
        try c.query(
            """
            WITH taken AS (
                UPDATE instances i
                SET state = CASE WHEN p.defer_scale_in_seconds > 0 THEN 'idle' ELSE 'released' END,
                    idle_since = CASE WHEN p.defer_scale_in_seconds > 0 THEN clock_timestamp() END,
                    ended_at = CASE WHEN p.defer_scale_in_seconds > 0 THEN NULL ELSE clock_timestamp() END
                FROM pools p
                WHERE i.seq = ANY($1::bigint[]) AND i.state = 'running'
                  AND p.region_id = i.region_id AND p.id = i.pool_id
                RETURNING i.id, i.allocation_id, i.region_id, i.pool_id, i.state
            ), counters AS (
                UPDATE pools p SET idle = p.idle + t.idled, allocated = p.allocated - t.freed, updated_at = now()
                FROM (SELECT region_id, pool_id, count(*) FILTER (WHERE state = 'idle')::int AS idled,
                             count(*) FILTER (WHERE state = 'released')::int AS freed
                      FROM taken GROUP BY region_id, pool_id) t
                WHERE p.region_id = t.region_id AND p.id = t.pool_id
            )
            INSERT INTO ledger (kind, region_id, pool_id, allocation_id, instance_id, delta, actor)
            SELECT $2, region_id, pool_id, allocation_id, id, CASE WHEN state = 'idle' THEN 0 ELSE -1 END, $3
            FROM taken
            """,
            [instanceSeqs.map(String.init), kind, actor])
    }

    struct LiveInstance {
        var seq: Int64
        var region: String
        var unit: Int?
    }

    /// The allocation's current `decisions`.
    static func decisions(_ c: PostgresConnection, id: UUID) throws -> [PlacementDecision] {
        try c.query("SELECT decisions FROM allocations WHERE id = $1", [id])[0].decodeJSON("decisions")
    }

    static func runningInstances(_ c: PostgresConnection, allocationId: UUID) throws -> [LiveInstance] {
        try c.query(
            "SELECT seq, region_id, unit FROM instances WHERE allocation_id = $1 AND state = 'running' ORDER BY seq",
            [allocationId]
        ).map { LiveInstance(seq: try $0.decode("seq"), region: try $0.decode("region_id"), unit: try $0.decodeIfPresent("unit")) }
    }

    /// Locks a changeable allocation of this tenant and returns its request.
    static func lockLive(_ c: PostgresConnection, id: UUID, tenantId: UUID) throws -> AllocationRequest {
        let rows = try c.query(
            "SELECT status, request::text AS request FROM allocations WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
            [id, tenantId])
        guard let row = rows.first else { throw StoreError.notFound("allocation \(id.lowercased) not found") }
        let status: AllocationStatus = try enumValue(row, "status")
        guard status == .active || status == .partial else {
            throw StoreError.conflict("allocation \(id.lowercased) is \(status.rawValue): only active or partial allocations change")
        }
        return try row.decodeJSON("request")
    }
}
