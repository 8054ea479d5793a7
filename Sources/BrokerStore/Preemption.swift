import BrokerCore
import Foundation
import PostgresClient

// Rule 8: default-QoS grants reclaim best-effort instances. `GrantPlanner` chooses the
// victims; here they are read (and locked) and taken out of service, with the notice and
// minimum runtime the admin set for their QoS (`preemption_settings`, migration 17;
// definitions/preemption.sql does both steps of taking one).
extension AllocationStore {
    /// Plans, and when the plan asks for them reads the preemption candidates and plans again.
    static func planWithPreemption(_ c: PostgresConnection, _ input: GrantInput) throws -> GrantPlan {
        let plan = GrantPlanner.plan(input)
        guard plan.wantsPreemptionCandidates else { return plan }
        var input = input
        input.preemptible = try preemptionCandidates(c, pools: plan.preemptionPools, limit: input.replicas)
        return GrantPlanner.plan(input)
    }

    /// Running best-effort instances on `pools` (`region/pool` keys) that have run their
    /// QoS's minimum runtime, newest first. They are locked, so no one else releases or
    /// preempts them meanwhile; ones locked by others are passed over.
    static func preemptionCandidates(_ c: PostgresConnection, pools: [String], limit: Int) throws -> [PreemptionCandidate] {
        try c.query(
            """
            SELECT i.seq, i.region_id, i.pool_id FROM instances i JOIN allocations a ON a.id = i.allocation_id
            LEFT JOIN preemption_settings s ON s.qos = 'best-effort'
            WHERE i.state = 'running' AND a.request->'shape'->>'qos' = 'best-effort'
              AND i.region_id || '/' || i.pool_id = ANY($1::text[])
              AND i.created_at <= now() - make_interval(secs => coalesce(s.min_runtime_seconds, 0))
            ORDER BY i.seq DESC LIMIT $2 FOR UPDATE OF i SKIP LOCKED
            """,
            [pools, limit]
        ).map { row in
            (seq: try row.decode("seq"), region: try row.decode("region_id"), poolId: try row.decode("pool_id"))
        }
    }

    /// Preempts running instances for `allocationId` (`gpb_preempt`). Victims whose QoS has
    /// no notice stop at once, their capacity free for the caller to reserve (no warm idle);
    /// the others turn `preempting`, keep running until their deadline (their tenant gets
    /// an `allocation.preempting` event), and the latest deadline is returned: the caller's
    /// allocation then waits as pending, and the notice worker (`endDuePreemptions`) admits
    /// it when they stop. Victims may belong to another tenant: their decisions name no
    /// preemptor, whose ids go only to the ledger's actor, masked for tenants (`events`).
    @discardableResult
    static func preempt(_ c: PostgresConnection, instanceSeqs: [Int64], for allocationId: UUID, actor: String) throws -> Date? {
        if instanceSeqs.isEmpty { return nil }
        return try c.query(
            "SELECT gpb_preempt($1::bigint[], $2, $3) AS deadline", [instanceSeqs.map(String.init), allocationId, actor]
        )[0].decodeIfPresent("deadline")
    }

    /// Stops this allocation's instances under notice now (it is released or expires
    /// before the deadline) and admits the allocations that waited for them.
    static func endPreemptionsEarly(_ c: PostgresConnection, allocationIds: [String]) throws {
        let waiting: [UUID] = try c.query(
            """
            SELECT DISTINCT s.waiting FROM gpb_stop_preempted(
                ARRAY(SELECT seq FROM instances WHERE allocation_id = ANY($1::uuid[]) AND state = 'preempting'),
                'preemption-ended-early') AS s
            WHERE s.waiting IS NOT NULL
            """,
            [allocationIds]
        ).map { try $0.decode("waiting") }
        try admitWaiting(c, waiting)
    }

    /// Admits allocations that waited for preempted capacity, each in a savepoint: one
    /// that fails (its quota, a lost race) stays pending for the pending admitter, and
    /// the preemptions stand.
    static func admitWaiting(_ c: PostgresConnection, _ ids: [UUID]) throws {
        for id in ids {
            try c.query("SAVEPOINT admit_waiting")
            do {
                _ = try admitPending(c, id: id, actor: "preemption-notice")
                try c.query("RELEASE SAVEPOINT admit_waiting")
            } catch {
                try c.query("ROLLBACK TO SAVEPOINT admit_waiting")
            }
        }
    }

    enum PendingAdmission {
        case admitted
        /// Admitted on capacity reclaimed from tenants over their share (`ShareReclaim`).
        case reclaimed
        /// Its decisions say why.
        case didNotFit
        /// Admitted, withdrawn or being admitted by another broker.
        case notPending
    }

    /// The pending allocation's plan carried out if it fits now: its instances reserved and
    /// its lease started.
    static func admitPending(
        _ c: PostgresConnection, id: UUID, actor: String, shares: ShareSnapshot? = nil
    ) throws -> PendingAdmission {
        let rows = try c.query(
            """
            SELECT request::text AS request, tenant_id::text AS tenant FROM allocations
            WHERE id = $1 AND status = 'pending' FOR UPDATE SKIP LOCKED
            """,
            [id])
        guard let row = rows.first else { return .notPending }
        let request: AllocationRequest = try row.decodeJSON("request")
        var plan = GrantPlanner.plan(GrantInput(request: request, inventory: try InventoryStore.snapshot(c, fitting: request.shape)))
        var reclaimed = false
        if plan.outcome != .grant, let shares {
            let victims = try ShareReclaim.victims(c, tenant: try row.decode("tenant"), request: request, shares: shares)
            if !victims.isEmpty {
                // Victims owed notice keep their capacity until their deadline: the request
                // waits for a later pass (the rollback puts them back to running).
                guard try preempt(c, instanceSeqs: victims, for: id, actor: "fair-share-reclaim") == nil else {
                    throw LostRace()
                }
                plan = GrantPlanner.plan(GrantInput(request: request, inventory: try InventoryStore.snapshot(c, fitting: request.shape)))
                guard plan.outcome == .grant else { throw LostRace() }
                reclaimed = true
            }
        }
        guard plan.outcome == .grant else {
            // Rewritten only when the reasons changed: a waiting queue costs no writes per pass.
            try c.query(
                "UPDATE allocations SET decisions = $2::jsonb WHERE id = $1 AND decisions IS DISTINCT FROM $2::jsonb",
                [id, try PostgresJSON(plan.decisions)])
            return .didNotFit
        }
        try QuotaCheck.verifyPriceCap(c, plan.request, try reserve(c, allocationId: id, rows: plan.rows, actor: actor))
        try c.query(
            """
            UPDATE allocations SET status = $2, placed_replicas = $3, decisions = $4::jsonb,
                   lease_expires_at = now() + make_interval(secs => lease_seconds), queue_deadline = NULL,
                   updated_at = clock_timestamp()
            WHERE id = $1
            """,
            [id, (plan.placement.satisfied ? AllocationStatus.active : .partial).rawValue, plan.placement.placed,
             try PostgresJSON(plan.decisions)])
        return reclaimed ? .reclaimed : .admitted
    }

    /// A grant whose victims were given notice: its allocation waits as pending until they
    /// stop (and at least its queue timeout), saying so; it counts as one of the tenant's
    /// pending allocations (`limit`).
    static func recordAwaitingPreemption(
        _ c: PostgresConnection, tenantId: UUID, _ plan: GrantPlan, id: UUID, victims: Int, deadline: Date, limit: Int
    ) throws -> AllocationView {
        var plan = plan
        plan.placement.decisions.append(.awaitingPreemption(victims, until: deadline))
        return try recordPending(c, tenantId: tenantId, plan, limit: limit, id: id, waitingUntil: deadline)
    }
}

extension MaintenanceStore {
    /// The notice worker: stops preempting instances whose deadline has come, `batch` at a
    /// time, and admits the allocations that waited for them in the same transaction, so
    /// their capacity passes to them and to no one else. Returns how many instances stopped.
    public func endDuePreemptions(batch: Int = 200) async throws -> Int {
        try await StoreError.translating {
            var total = 0
            while true {
                let stopped = try await pool.withTransaction { c in
                    let ended = try c.query(
                        """
                        SELECT e.stopped, array_to_string(e.waiting, ',') AS waiting, array_to_string(e.victims, ',') AS victims
                        FROM gpb_end_due_preemptions($1) e
                        """,
                        [batch])[0]
                    func ids(_ column: String) throws -> [UUID] {
                        try ended.decode(column, as: String.self).split(separator: ",").compactMap { UUID(uuidString: String($0)) }
                    }
                    // The waiting allocations first: the capacity was preempted for them.
                    try AllocationStore.admitWaiting(c, try ids("waiting"))
                    try AllocationStore.recover(c, allocationIds: try ids("victims"))
                    return try ended.decode("stopped", as: Int.self)
                }
                if stopped == 0 { return total }
                total += stopped
            }
        }
    }
}
