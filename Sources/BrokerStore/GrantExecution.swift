import BrokerCore
import Foundation
import JSON
import PostgresClient

// New allocations: `GrantPlanner` decides, this carries the plan out.
extension AllocationStore {
    /// Grants a request. With an idempotency key, the key is recorded in the grant's
    /// own transaction: the same key and request replay the first answer, another
    /// request with the key is refused, and a concurrent duplicate waits on the key's
    /// row until the first commits (or rolls back, and then plans anew).
    public func create(
        tenantId: UUID, request: AllocationRequest, actor: String, idempotencyKey: String? = nil
    ) async throws -> AllocationView {
        if idempotencyKey == nil, let view = try await createBatched(tenantId: tenantId, request: request, actor: actor) {
            return view
        }
        return try await createInTransaction(tenantId: tenantId, request: request, actor: actor, idempotencyKey: idempotencyKey)
    }

    /// What a grant without a transaction of its own does after planning.
    enum BatchedStep: Sendable {
        case reserve(PlannedGrant)
        /// Recorded as pending.
        case answered(AllocationView)
        /// Instances to preempt: one transaction.
        case transaction
    }

    /// Planned on this task from a recent inventory snapshot and the tenant's cached
    /// settings, and reserved by the batch statement (`gpb_grant_batch`),
    /// which checks again what the plan assumed, the pools' prices against the price cap,
    /// and the tenant's quota and budgets. The database is asked first only for settings
    /// not cached, and for the inventory's latest changes when the snapshot falls short
    /// (before any 409 or pending answer). A grant the batch left out is refused if its quota or budget
    /// would be passed as things stand now (`QuotaCheck.refusal`; over a budget it may
    /// wait as pending instead), else planned again. Nil when the plan needs
    /// `createInTransaction`.
    func createBatched(tenantId: UUID, request: AllocationRequest, actor: String) async throws -> AllocationView? {
        try await retryingLostRaces {
            var inventory = try await snapshots.current(pool).inventory
            let cached = settings.lookup(tenantId)
            var step: BatchedStep?
            let recent = cached.map { GrantPlanner.plan(Self.grantInput(request, $0, inventory)) }
            if let recent, let cached, recent.outcome == .grant {
                step = try Self.batchedStep(recent, tenantId: tenantId, settings: cached, actor: actor)
            }
            if step == nil {
                let settings: TenantSettings
                if let cached {
                    settings = cached
                } else {
                    settings = try await pool.withConnection { c in try TenantSettings.load(c, tenantId: tenantId) }
                    self.settings.remember(tenantId, settings)
                }
                var plan = recent ?? GrantPlanner.plan(Self.grantInput(request, settings, inventory))
                if plan.outcome != .grant {
                    snapshots.invalidate()
                    inventory = try await snapshots.current(pool).inventory
                    plan = GrantPlanner.plan(Self.grantInput(request, settings, inventory))
                }
                if plan.outcome == .queue, !plan.wantsPreemptionCandidates {
                    let pending = plan
                    let alternatives = QueueAlternatives.find(Self.grantInput(request, settings, inventory))
                    step = .answered(try await pool.withTransaction { [pendingLimit] c in
                        try Self.recordPending(c, tenantId: tenantId, pending, limit: pendingLimit, alternatives: alternatives)
                    })
                } else {
                    step = try Self.batchedStep(plan, tenantId: tenantId, settings: settings, actor: actor)
                }
            }
            switch step! {
            case .transaction:
                return nil
            case .answered(let view):
                return view
            case .reserve(let grant):
                do {
                    return grant.view(instances: try await batcher.grant(grant.reservation))
                } catch let lost as LostRace {
                    settings.forget(tenantId)
                    let answer = try await pool.withTransaction { [pendingLimit] c -> AllocationView? in
                        guard let refusal = try QuotaCheck.refusal(c, grant.reservation) else { return nil }
                        return try Self.refuse(c, tenantId: tenantId, grant.plan, refusal, pendingLimit: pendingLimit)
                    }
                    guard let answer else { throw lost }
                    return answer
                }
            }
        }
    }

    static func batchedStep(
        _ plan: GrantPlan, tenantId: UUID, settings: TenantSettings, actor: String
    ) throws -> BatchedStep {
        if plan.wantsPreemptionCandidates { return .transaction }
        guard plan.outcome == .grant else {
            throw StoreError.insufficientCapacity(plan.shortfall, decisions: plan.decisions)
        }
        return .reserve(PlannedGrant(plan, tenantId: tenantId, policiesVersion: settings.policiesVersion, actor: actor))
    }

    /// Plans from fresh inventory, with preemption, in one transaction that also records
    /// the idempotency key.
    func createInTransaction(
        tenantId: UUID, request: AllocationRequest, actor: String, idempotencyKey: String?
    ) async throws -> AllocationView {
        try await retryingLostRaces {
            try await pool.withTransaction { c in
                try Self.grantKeyed(
                    c, tenantId: tenantId, request: request, as: request, key: idempotencyKey, actor: actor, pendingLimit: pendingLimit)
            }
        }
    }

    /// Grants `request`, or replays the answer recorded under `key` for `asked` (what the
    /// manifest asked for, before the broker pinned it to a region); `anyBody`: for
    /// whatever was asked (a key that names the body itself).
    static func grantKeyed(
        _ c: PostgresConnection, tenantId: UUID, request: AllocationRequest, as asked: AllocationRequest, key: String?,
        actor: String, pendingLimit: Int, anyBody: Bool = false
    ) throws -> AllocationView {
        if let key,
            let replay = try claimIdempotencyKey(c, tenantId: tenantId, key: key, fingerprint: fingerprint(asked), anyBody: anyBody)
        {
            return replay
        }
        let view = try grant(c, tenantId: tenantId, request: request, actor: actor, pendingLimit: pendingLimit)
        if let key { try recordAnswer(c, tenantId: tenantId, key: key, view) }
        return view
    }

    /// Grants a request in the caller's transaction: pending with `queue` (with the
    /// alternatives that fit now), 409 when it cannot be met, else victims preempted and
    /// the plan reserved (a reservation past the tenant's quota fails with GB003,
    /// `quotaExceeded`; pending past `pendingLimit` is refused). `planned` sees the plan
    /// first (a dry run's verdicts need it).
    static func grant(
        _ c: PostgresConnection, tenantId: UUID, request: AllocationRequest, actor: String, pendingLimit: Int,
        planned: (GrantPlan) -> Void = { _ in }
    ) throws -> AllocationView {
        let settings = try TenantSettings.load(c, tenantId: tenantId)
        let plan = try planWithPreemption(c, grantInput(request, settings, Inventory(try InventoryStore.snapshot(c, fitting: request.shape))))
        planned(plan)
        switch plan.outcome {
        case .refuse:
            throw StoreError.insufficientCapacity(plan.shortfall, decisions: plan.decisions)
        case .queue:
            let everything = grantInput(request, settings, Inventory(try InventoryStore.snapshot(c)))
            return try recordPending(
                c, tenantId: tenantId, plan, limit: pendingLimit, alternatives: QueueAlternatives.find(everything))
        case .grant:
            let grant = PlannedGrant(plan, tenantId: tenantId, policiesVersion: settings.policiesVersion, actor: actor)
            // Over budget the reservation fails (GB004): asked first only to queue instead,
            // quota before budget as the batched path asks (`createBatched`), so that both
            // paths, and a dry run, refuse a request over both for the same reason.
            if plan.request.queue, settings.budgeted, let refusal = try QuotaCheck.refusal(c, grant.reservation) {
                return try refuse(c, tenantId: tenantId, plan, refusal, pendingLimit: pendingLimit)
            }
            let id = grant.reservation.allocationId.uuid
            if let deadline = try preempt(c, instanceSeqs: plan.victims, for: id, actor: actor) {
                return try recordAwaitingPreemption(
                    c, tenantId: tenantId, plan, id: id, victims: plan.victims.count, deadline: deadline, limit: pendingLimit)
            }
            let instances = try grant.reservation.reserve(c)
            try QuotaCheck.verifyPriceCap(c, plan.request, instances)
            try recoverVictims(c, instanceSeqs: plan.victims)
            return grant.view(instances: instances)
        }
    }

    /// A refused grant's answer: pending when it is over a budget, asked to queue and asks
    /// no more than the whole budget (admitted once budget frees), else the refusal.
    static func refuse(
        _ c: PostgresConnection, tenantId: UUID, _ plan: GrantPlan, _ refusal: StoreError, pendingLimit: Int
    ) throws -> AllocationView {
        guard case .budgetExceeded(let shortfall) = refusal, plan.request.queue, shortfall.mayFitLater else { throw refusal }
        var plan = plan
        plan.placement.decisions.append(.waitingForBudget(shortfall.detail))
        return try recordPending(c, tenantId: tenantId, plan, limit: pendingLimit)
    }

    /// What an idempotency key compares: the validated request as stable JSON.
    static func fingerprint(_ request: AllocationRequest) -> String {
        String(decoding: request.canonicalJSON(), as: UTF8.self)
    }

    /// The first answer, replayed for the key from now on.
    static func recordAnswer(_ c: PostgresConnection, tenantId: UUID, key: String, _ view: AllocationView) throws {
        try c.query(
            "UPDATE idempotency_keys SET response = $3, allocation_id = $4 WHERE tenant_id = $1 AND key = $2",
            [tenantId, key, String(decoding: StoreJSON.bytes(view), as: UTF8.self), view.id])
    }

    static func grantInput(_ request: AllocationRequest, _ settings: TenantSettings, _ inventory: Inventory) -> GrantInput {
        var input = GrantInput(request: request, inventory: inventory)
        input.policies = settings.policies
        input.mayQueue = true
        return input
    }

    /// Claims `key` for this grant, or returns the answer already recorded under it (for
    /// the same request, or with `anyBody` for any).
    static func claimIdempotencyKey(
        _ c: PostgresConnection, tenantId: UUID, key: String, fingerprint: String, anyBody: Bool = false
    ) throws -> AllocationView? {
        let claimed = try c.query(
            """
            INSERT INTO idempotency_keys (tenant_id, key, request_hash) VALUES ($1, $2, sha256(convert_to($3, 'UTF8')))
            ON CONFLICT (tenant_id, key) DO NOTHING RETURNING 1
            """,
            [tenantId, key, fingerprint])
        if !claimed.isEmpty { return nil }
        // Keys recorded before the JSON module (they live a day) hashed the request with
        // slashes escaped and stored dates as Foundation's numbers: both are accepted.
        let rows = try c.query(
            """
            SELECT request_hash IN (sha256(convert_to($3, 'UTF8')), sha256(convert_to($4, 'UTF8'))) AS same,
                   response, allocation_id
            FROM idempotency_keys WHERE tenant_id = $1 AND key = $2
            """,
            [tenantId, key, fingerprint, fingerprint.replacingOccurrences(of: "/", with: "\\/")])
        guard try anyBody || rows[0].decode("same", as: Bool.self) else { throw StoreError.idempotencyKeyReused }
        if let first = try? rows[0].decodeJSON("response", as: AllocationView.self) { return first }
        return try load(c, id: try rows[0].decode("allocation_id"), tenantId: tenantId)
    }

    /// An allocation that waits (`queue`), with the decisions that kept it waiting and,
    /// when it waits for capacity, the alternatives that would fit now; refused when the
    /// tenant already has `limit` waiting (`TenantLimits`). `waitingUntil`: for instances
    /// under preemption notice, which its queue deadline outlasts by a minute.
    static func recordPending(
        _ c: PostgresConnection, tenantId: UUID, _ plan: GrantPlan, limit: Int, id: UUID = UUID.timeOrdered(),
        waitingUntil: Date? = nil, alternatives: [QueueAlternative]? = nil
    ) throws -> AllocationView {
        try TenantLimits.check(
            c, .pendingAllocationsPerTenant, tenantId: tenantId, limit: limit,
            held: "SELECT count(*)::int AS n FROM allocations WHERE tenant_id = $1 AND status = 'pending'", [tenantId])
        let request = plan.request
        let row = try c.query(
            """
            INSERT INTO allocations AS a (id, tenant_id, status, request, replicas, labels, decisions,
                                          lease_seconds, queue_deadline)
            VALUES ($1, $2, 'pending', $3::jsonb, $4, $5::jsonb, $6::jsonb, $7,
                    greatest(now() + make_interval(secs => $8), $9::timestamptz + interval '1 minute'))
            RETURNING \(AllocationRows.allocationColumns)
            """,
            [id, tenantId, try PostgresJSON(request), request.replicas, try PostgresJSON(request.labels),
             try PostgresJSON(plan.decisions), request.leaseSeconds, request.queueTimeoutSeconds, waitingUntil])[0]
        var view = try AllocationRows.allocation(row, instances: [])
        view.alternatives = alternatives
        return view
    }

    /// A plan to reserve as a new allocation, and how to answer once its instances exist.
    struct PlannedGrant: Sendable {
        var reservation: GrantReservation
        var plan: GrantPlan

        init(_ plan: GrantPlan, tenantId: UUID, policiesVersion: String, actor: String) {
            let id = ResourceID(UUID.timeOrdered())
            self.reservation = GrantReservation(
                allocationId: id,
                record: StoreJSON.bytes(
                    plan.record(id: id, tenantId: ResourceID(tenantId), actor: actor, policiesVersion: policiesVersion)))
            self.plan = plan
        }

        func view(instances: [InstanceView]) -> AllocationView {
            plan.view(id: reservation.allocationId, instances: instances)
        }
    }

    /// Reserves a plan's rows for an existing allocation in one round trip (`gpb_reserve`,
    /// its placements typed as `gpb_placement[]` where the statement reads them). Returns
    /// the new instances.
    @discardableResult
    static func reserve(_ c: PostgresConnection, allocationId: UUID, rows: [PlacementRow], actor: String) throws -> [InstanceView] {
        var placements = JSONWriter(capacity: 128 * rows.count)
        placements.value(rows)
        return try reservation(
            c, "SELECT * FROM gpb_reserve($1, ARRAY(SELECT jsonb_populate_recordset(NULL::gpb_placement, $2::jsonb)), $3)",
            [allocationId, PostgresJSON(rawJSON: placements.text), actor])
    }

    /// Runs `gpb_reserve` or `gpb_grant`: idle warm instances of each pool first, then
    /// new capacity with a conditional counter update, instances and ledger rows
    /// written together. Their SQLSTATE GB001 (`planNoLongerFits`: a pool no longer has
    /// what the plan counted on) becomes `LostRace`, and the caller plans again.
    static func reservation(_ c: PostgresConnection, _ sql: String, _ binds: [any PostgresEncodable]) throws -> [InstanceView] {
        do {
            return try c.query(sql, binds).map { try AllocationRows.instance($0) }
        } catch let error as PostgresError where error.sqlState == .planNoLongerFits {
            throw LostRace()
        }
    }
}
