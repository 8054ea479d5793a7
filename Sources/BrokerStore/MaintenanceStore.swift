import BrokerCore
import Foundation
import PostgresClient

/// The background work on the ledger. Each step claims its rows with
/// `FOR UPDATE SKIP LOCKED`, so brokers running it at once split the work instead of
/// doing it twice. Time is the database's clock, never the broker's.
public struct MaintenanceStore: Sendable {
    let pool: PostgresPool
    /// A pending request that has waited this long holds the pools it waits for: nothing
    /// queued after it is admitted to them until it fits (the starvation guard).
    let starvationLimit: Duration

    public init(pool: PostgresPool, starvationLimit: Duration = MaintenanceStore.defaultStarvationLimit) {
        self.pool = pool
        self.starvationLimit = starvationLimit
    }

    public static let defaultStarvationLimit = Duration.seconds(300)

    /// Expires allocations whose lease ran out, `batch` at a time until none is due:
    /// instances leave `running` (warm idle where the pool defers scale-in), ledger rows of
    /// kind `expired`. Each batch is one transaction that locks its pools in key order
    /// before changing them, the order `gpb_grant_batch` locks them in, so expiry and
    /// grants never deadlock. Returns how many allocations this call expired.
    public func expireLeases(batch: Int = 500) async throws -> Int {
        var total = 0
        while true {
            let expired = try await expireBatch(limit: batch)
            if expired == 0 { return total }
            total += expired
        }
    }

    private func expireBatch(limit: Int) async throws -> Int {
        try await StoreError.translating {
            try await pool.withTransaction { c in
                let ids: [String] = try c.query(
                    """
                    SELECT id::text AS id FROM allocations
                    WHERE status IN ('active', 'partial') AND lease_expires_at <= now()
                    ORDER BY lease_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
                    """,
                    [limit]
                ).map { try $0.decode("id") }
                if ids.isEmpty { return 0 }
                // The pools are locked by an init plan, before any instance is returned.
                let seqs: [Int64] = try c.query(
                    """
                    WITH live AS (
                        SELECT seq, region_id, pool_id, state FROM instances
                        WHERE allocation_id = ANY($1::uuid[]) AND state IN ('running', 'preempting')
                    ), locked AS (
                        SELECT 1 FROM pools WHERE (region_id, id) IN (SELECT region_id, pool_id FROM live)
                        ORDER BY region_id, id FOR UPDATE
                    )
                    SELECT seq FROM live WHERE state = 'running' AND (SELECT count(*) FROM locked) >= 0
                    """,
                    [ids]
                ).map { try $0.decode("seq") }
                // Instances under notice stop now (their capacity passes to who waited for it).
                try AllocationStore.endPreemptionsEarly(c, allocationIds: ids)
                try AllocationStore.release(c, instanceSeqs: seqs, kind: "expired", actor: "lease-reconciler")
                try c.query(
                    """
                    UPDATE allocations SET status = 'expired', placed_replicas = 0, updated_at = clock_timestamp()
                    WHERE id = ANY($1::uuid[])
                    """, [ids])
                return ids.count
            }
        }
    }

    /// Deprovisions idle instances whose pool's scale-in delay has passed.
    public func deprovisionIdle(limit: Int = 500) async throws -> Int {
        try await StoreError.translating {
            try await pool.withTransaction { c in
                let rows = try c.query(
                    """
                    WITH due AS (
                        SELECT i.seq FROM instances i JOIN pools p ON p.region_id = i.region_id AND p.id = i.pool_id
                        WHERE i.state = 'idle'
                          AND i.idle_since + make_interval(secs => p.defer_scale_in_seconds) <= clock_timestamp()
                        ORDER BY i.idle_since LIMIT $1 FOR UPDATE OF i SKIP LOCKED
                    ), gone AS (
                        UPDATE instances i SET state = 'released', ended_at = clock_timestamp()
                        FROM due WHERE i.seq = due.seq
                        RETURNING i.id, i.allocation_id, i.region_id, i.pool_id
                    ), counters AS (
                        UPDATE pools p SET idle = p.idle - g.n, allocated = p.allocated - g.n, updated_at = now()
                        FROM (SELECT region_id, pool_id, count(*)::int AS n FROM gone GROUP BY region_id, pool_id) g
                        WHERE p.region_id = g.region_id AND p.id = g.pool_id
                    )
                    INSERT INTO ledger (kind, region_id, pool_id, allocation_id, instance_id, delta, actor)
                    SELECT 'deprovisioned', region_id, pool_id, allocation_id, id, -1, 'idle-releaser' FROM gone
                    RETURNING 1
                    """,
                    [limit])
                return rows.count
            }
        }
    }

    /// Forgets idempotency keys after a day: a client retrying later makes a new request.
    public func purgeIdempotencyKeys() async throws -> Int {
        try await StoreError.translating {
            try await pool.withConnection { c in
                try c.query("DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours' RETURNING 1").count
            }
        }
    }

    /// Admits pending allocations in `AdmissionOrder` while capacity exists: priority,
    /// then requests starving past the limit, then the tenant's weighted dominant share,
    /// then age. One that still does not fit keeps waiting (its decisions say why) and
    /// does not block later ones, however many, unless it is starving: then the pools it
    /// could use are held for it for the rest of the pass, so capacity freed there
    /// accumulates until it fits. What the pass learns (`AdmissionPass`) spares it
    /// planning a refusal twice. Past their deadline requests become `unschedulable`.
    public func admitPending(page: Int = 500) async throws -> (admitted: Int, timedOut: Int) {
        try await StoreError.translating {
            let timedOut = try await pool.withConnection { c in
                try c.query(
                    """
                    UPDATE allocations SET status = 'unschedulable', updated_at = clock_timestamp()
                    WHERE status = 'pending' AND queue_deadline <= now() RETURNING id
                    """
                ).count
            }
            let queue = try await pendingQueue(page: page)
            if queue.isEmpty { return (0, timedOut) }
            var shares = try await pool.withConnection { try ShareStore.snapshot($0) }
            var order = AdmissionOrder(starvationLimitSeconds: starvationLimit / .seconds(1), shares: shares.dominantShares)
            let bySeq = Dictionary(uniqueKeysWithValues: queue.map { ($0.order.seq, $0) })
            var remaining = order.sorted(queue.map(\.order))[...]
            var pass = AdmissionPass()
            var inventory: [RegionInventory]?
            var admitted = 0
            while let next = remaining.popFirst() {
                let entry = bySeq[next.seq]!
                let starving = order.isStarving(next)
                if pass.holdsPools || starving {
                    if inventory == nil { inventory = try await pool.withConnection { try InventoryStore.snapshot($0) } }
                    let pools = QueuePositionStore.pools(try entry.decodedRequest(), in: inventory!)
                    if pass.isHeld(pools) { continue }
                    if starving && !pass.worthPlanning(tenant: entry.tenant, shapeKey: entry.shapeKey, replicas: entry.replicas) {
                        pass.hold(pools)
                        continue
                    }
                }
                guard pass.worthPlanning(tenant: entry.tenant, shapeKey: entry.shapeKey, replicas: entry.replicas) else { continue }
                switch try await admitCatchingLimits(entry.id, shares: shares) {
                case .admitted:
                    admitted += 1
                    // Its tenant's share grew: the rest of the queue is ordered again.
                    let held = try await pool.withConnection { try ShareStore.held($0, tenant: entry.tenant) }
                    shares.standings[entry.tenant] = TenantStanding(
                        tenant: entry.tenant, share: shares.standing(entry.tenant).share, held: held[entry.tenant] ?? [:])
                    order.shares = shares.dominantShares
                    remaining = order.sorted(Array(remaining))[...]
                case .reclaimed:
                    admitted += 1
                    // Its victims' shares fell too: everyone's is read again.
                    shares = try await pool.withConnection { try ShareStore.snapshot($0) }
                    order.shares = shares.dominantShares
                    remaining = order.sorted(Array(remaining))[...]
                case .didNotFit:
                    pass.didNotFit(tenant: entry.tenant, shapeKey: entry.shapeKey, replicas: entry.replicas, allOrNothing: entry.allOrNothing)
                    if starving {
                        pass.hold(QueuePositionStore.pools(try entry.decodedRequest(), in: inventory!))
                    }
                case .heldByLimits: pass.heldByLimits(tenant: entry.tenant)
                case .elsewhere: continue
                }
            }
            return (admitted, timedOut)
        }
    }

    private struct Waiting {
        var order: AdmissionOrder.Entry
        var id: UUID
        var tenant: String { order.tenant }
        var shapeKey: String
        var replicas: Int
        var allOrNothing: Bool
        var request: String

        func decodedRequest() throws -> AllocationRequest {
            try PostgresJSON.makeDecoder().decode(AllocationRequest.self, from: Data(request.utf8))
        }
    }

    /// The whole pending queue, read a page at a time in creation order.
    private func pendingQueue(page: Int) async throws -> [Waiting] {
        var queue: [Waiting] = []
        var after: Int64 = 0
        while true {
            let rows = try await pendingPage(after: after, limit: page)
            queue += rows
            guard rows.count == page, let last = rows.last else { return queue }
            after = last.order.seq
        }
    }

    private func pendingPage(after: Int64, limit: Int) async throws -> [Waiting] {
        try await pool.withConnection { c in
            try c.query(
                """
                SELECT seq, id, tenant_id::text AS tenant, replicas, (request->>'allOrNothing')::boolean AS all_or_nothing,
                       (request - 'replicas' - 'leaseSeconds' - 'queueTimeoutSeconds' - 'queue')::text AS shape_key,
                       request::text AS request, extract(epoch FROM clock_timestamp() - created_at)::float8 AS waited
                FROM allocations
                WHERE status = 'pending' AND seq > $1
                ORDER BY seq LIMIT $2
                """,
                [after, limit]
            ).map {
                Waiting(
                    order: AdmissionOrder.Entry(
                        seq: try $0.decode("seq"), tenant: try $0.decode("tenant"), waitedSeconds: try $0.decode("waited")),
                    id: try $0.decode("id"), shapeKey: try $0.decode("shape_key"), replicas: try $0.decode("replicas"),
                    allOrNothing: try $0.decode("all_or_nothing"), request: try $0.decode("request"))
            }
        }
    }

    private enum Admission {
        case admitted, didNotFit, heldByLimits
        /// Admitted on capacity reclaimed from tenants over their share.
        case reclaimed
        /// Admitted, withdrawn or being admitted by another broker; or capacity moved under us.
        case elsewhere
    }

    private func admitCatchingLimits(_ id: UUID, shares: ShareSnapshot) async throws -> Admission {
        do {
            return try await admit(id, shares: shares)
        } catch is AllocationStore.LostRace {
            return .elsewhere  // capacity moved under us: the next pass plans again
        } catch let error as PostgresError where error.sqlState == .quotaExceeded {
            return .heldByLimits  // waits until its tenant's usage falls
        } catch let error as PostgresError where error.sqlState == .budgetExceeded {
            // Waits until budget frees (a release, a new month, a raised budget), and says so.
            _ = try await pool.withConnection { c in
                try c.query(
                    """
                    UPDATE allocations SET decisions = $2::jsonb
                    WHERE id = $1 AND status = 'pending' AND decisions IS DISTINCT FROM $2::jsonb
                    """,
                    [id, try PostgresJSON([PlacementDecision.waitingForBudget(error.message)])])
            }
            return .heldByLimits
        }
    }

    private func admit(_ id: UUID, shares: ShareSnapshot) async throws -> Admission {
        try await pool.withTransaction { c in
            switch try AllocationStore.admitPending(c, id: id, actor: "pending-admitter", shares: shares) {
            case .admitted: .admitted
            case .reclaimed: .reclaimed
            case .didNotFit: .didNotFit
            case .notPending: .elsewhere
            }
        }
    }
}
