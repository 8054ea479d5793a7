import BrokerCore
import Foundation
import JSON
import PostgresClient

/// What a request would do (`dryRun=true`), found by doing it: the same planner, the
/// same SQL and its checks (capacity, quota, budget, price cap), in a transaction that
/// is always rolled back. Nothing is kept: no allocation, ledger row, event, webhook
/// delivery or idempotency record, and the transaction's NOTIFYs are never sent.
public struct DryRunResult: Sendable {
    public var outcome: DryRunOutcome
    /// What the real request would answer when it succeeds: the allocation as it would be
    /// (its ids and times are the rehearsal's, not the ones a real request gets).
    public var allocation: AllocationView?
    /// What the real request would answer when it is refused for capacity, quota or budget.
    public var refusal: StoreError?
    public var decisions: [PlacementDecision]
    /// What the allocation's running instances would cost per hour after the change, at the
    /// pools' prices now (0 while queued or refused).
    public var pricePerHour: Double
    /// The tenant's quota limits and monthly budgets this request counts against.
    public var limits: [LimitVerdict]
    /// Where a request that would queue would wait.
    public var queue: QueuePosition?
}

/// One limit of a tenant (a quota member or a monthly budget) as a dry run finds it.
public struct LimitVerdict: Codable, Sendable, Equatable {
    /// `instances`, `gpus`, `cpu`, `memoryGiB` (quota) or `spendPerMonth`, `gpuHoursPerMonth` (this month's budget).
    public var name: String
    public var limit: Double
    /// In use (or spent and committed this month) before the request.
    public var used: Double
    /// What the request adds: worked out by the rehearsal when it is granted, from its
    /// plan when a quota refuses it, from the refusal for the budget that refuses it.
    public var requested: Double
    /// `limit - used - requested`; negative when the request passes the limit.
    public var remaining: Double
}

extension AllocationStore {
    /// `POST /v1/allocations?dryRun=true`: `create`'s transactional path, rehearsed. It
    /// reads the inventory and the tenant's settings afresh, and so does the grant sent
    /// after it: the snapshot and settings a batched grant would otherwise reuse (for up
    /// to two seconds while a newer read runs) are dropped, so that it plans from what the
    /// dry run saw.
    public func dryRun(tenantId: UUID, request: AllocationRequest, actor: String) async throws -> DryRunResult {
        defer {
            snapshots.invalidate()
            settings.forget(tenantId)
        }
        return try await rehearse(tenantId: tenantId) { c, planned in
            try Self.grant(c, tenantId: tenantId, request: request, actor: actor, pendingLimit: pendingLimit, planned: planned)
        }
    }

    /// `PATCH /v1/allocations/{id}?dryRun=true`: `scale`, rehearsed.
    public func dryRunScale(tenantId: UUID, id: UUID, replicas: Int, actor: String) async throws -> DryRunResult {
        try await rehearse(tenantId: tenantId) { c, planned in
            try Self.scale(c, tenantId: tenantId, id: id, replicas: replicas, actor: actor, planned: planned)
        }
    }

    /// `POST /v1/allocations/{id}/renew?dryRun=true`: `renew`, rehearsed.
    public func dryRunRenew(tenantId: UUID, id: UUID, leaseSeconds: Int?, actor: String) async throws -> DryRunResult {
        try await rehearse(tenantId: tenantId) { c, _ in
            try Self.renew(c, tenantId: tenantId, id: id, leaseSeconds: leaseSeconds, actor: actor)
        }
    }

    /// `POST /v1/allocations/from-manifest?dryRun=true`: `grantManifest`, rehearsed. The
    /// allocations per workload, or nil when the file would be refused.
    public func dryRunManifest(
        tenantId: UUID, plan: ManifestGrantPlan, actor: String
    ) async throws -> (placed: [[AllocationView]]?, result: DryRunResult) {
        try await rehearse(tenantId: tenantId, allocations: { $0.flatMap { $0 } }) { [pendingLimit] c, _ in
            try Self.grantManifest(c, tenantId: tenantId, plan: plan, actor: actor, pendingLimit: pendingLimit)
        }
    }

    /// One allocation's change, rehearsed.
    func rehearse(
        tenantId: UUID, _ change: @escaping @Sendable (PostgresConnection, (GrantPlan) -> Void) throws -> AllocationView
    ) async throws -> DryRunResult {
        try await rehearse(tenantId: tenantId, allocations: { [$0] }, change).result
    }

    /// Runs `change` in a transaction that is rolled back, and says what it did (the
    /// first of its `allocations`, their price together) or why it was refused. A refusal
    /// for capacity, quota or budget is the rehearsal's answer; anything else (an unknown
    /// allocation, a conflict) is thrown as the real request's.
    func rehearse<T: Sendable>(
        tenantId: UUID, allocations: @escaping @Sendable (T) -> [AllocationView],
        _ change: @escaping @Sendable (PostgresConnection, (GrantPlan) -> Void) throws -> T
    ) async throws -> (placed: T?, result: DryRunResult) {
        try await retryingLostRaces {
            try await pool.withRolledBackTransaction { c in
                let before = try Self.counters(c, tenantId: tenantId)
                var plan: GrantPlan?
                try c.query("SAVEPOINT dry_run")
                do {
                    let placed = try change(c) { plan = $0 }
                    let views = allocations(placed)
                    let after = try Self.counters(c, tenantId: tenantId)
                    let pending = views.first.map { $0.status == .pending } ?? false
                    let running = views.flatMap { $0.instances.filter { $0.state == .running } }
                    return (placed, DryRunResult(
                        outcome: pending ? .queued : .granted, allocation: views.first, refusal: nil,
                        decisions: views.first?.decisions ?? [], pricePerHour: try Self.pricePerHour(c, running),
                        limits: before.verdicts(requested: after.minus(before)),
                        queue: pending ? try QueuePositionStore.position(c, tenantId: tenantId, id: views[0].id.uuid) : nil))
                } catch let error as PostgresError {
                    guard let refusal = StoreError(error), refusal.isLimitRefusal else { throw error }
                    try c.query("ROLLBACK TO SAVEPOINT dry_run")
                    return (nil, Self.refused(refusal, plan: plan, before: before))
                } catch let refusal as StoreError where refusal.isLimitRefusal {
                    try c.query("ROLLBACK TO SAVEPOINT dry_run")
                    return (nil, Self.refused(refusal, plan: plan, before: before))
                }
            }
        }
    }

    static func refused(_ refusal: StoreError, plan: GrantPlan?, before: Counters) -> DryRunResult {
        var requested = Counters()
        if case .budgetExceeded(let shortfall) = refusal {
            requested.values[shortfall.budget] = shortfall.members["requested"]?.numberValue
        } else if let plan, case .quotaExceeded = refusal {
            let placed = Double(plan.placement.placed)
            let shape = plan.request.shape
            requested.values = [
                "instances": placed, "gpus": placed * Double(shape.gpuCount), "cpu": placed * shape.cpu,
                "memoryGiB": placed * shape.memoryGiB,
            ]
        }
        var decisions = plan?.decisions ?? []
        if case .insufficientCapacity(_, let refused) = refusal { decisions = refused }
        return DryRunResult(
            outcome: .refused, allocation: nil, refusal: refusal, decisions: decisions, pricePerHour: 0,
            limits: before.verdicts(requested: requested), queue: nil)
    }

    /// The instances' pools' prices per hour, summed.
    static func pricePerHour(_ c: PostgresConnection, _ instances: [InstanceView]) throws -> Double {
        if instances.isEmpty { return 0 }
        return try c.query(
            """
            SELECT coalesce(sum(p.price_per_hour), 0)::float8 AS price
            FROM unnest($1::text[], $2::text[]) AS i (region_id, pool_id)
            JOIN pools p ON p.region_id = i.region_id AND p.id = i.pool_id
            """,
            [instances.map(\.region), instances.map(\.poolId)])[0].decode("price")
    }

    /// A tenant's limits and what counts against them: its usage counters (quota) and this
    /// month's spend and GPU-hours, spent or committed (budgets, only when it has one).
    struct Counters: Sendable {
        var limits: [String: Double] = [:]
        var values: [String: Double] = [:]

        static let names = LimitName.allCases.map(\.rawValue)

        func minus(_ other: Counters) -> Counters {
            Counters(limits: limits, values: values.merging(other.values) { mine, theirs in mine - theirs })
        }

        func verdicts(requested: Counters) -> [LimitVerdict] {
            Self.names.compactMap { name in
                guard let limit = limits[name] else { return nil }
                let used = values[name] ?? 0
                let adding = requested.values[name] ?? 0
                return LimitVerdict(name: name, limit: limit, used: used, requested: adding, remaining: limit - used - adding)
            }
        }
    }

    static func counters(_ c: PostgresConnection, tenantId: UUID) throws -> Counters {
        guard let row = try c.query(
            """
            SELECT t.quota::text AS quota, u.instances::float8 AS instances, u.gpus::float8 AS gpus,
                   u.cpu::float8 AS cpu, u.memory_gib::float8 AS memory_gib,
                   coalesce((s.committed_spend + s.adjusted_spend) / 3600, 0)::float8 AS spend,
                   coalesce((s.committed_gpu_seconds + s.adjusted_gpu_seconds) / 3600, 0)::float8 AS gpu_hours
            FROM tenants t JOIN tenant_usage u ON u.tenant_id = t.id
            LEFT JOIN tenant_spend s ON s.tenant_id = t.id AND s.month = date_trunc('month', now() AT TIME ZONE 'UTC')::date
            WHERE t.id = $1
            """, [tenantId]
        ).first else { throw StoreError.notFound("tenant \(tenantId.lowercased) not found") }
        let quota = (try? JSONValue.parse(try row.decode("quota", as: String.self)))?.objectValue ?? [:]
        var counters = Counters(limits: quota.compactMapValues(\.numberValue).filter { Counters.names.contains($0.key) })
        counters.values = [
            "instances": try row.decode("instances"), "gpus": try row.decode("gpus"), "cpu": try row.decode("cpu"),
            "memoryGiB": try row.decode("memory_gib"), "spendPerMonth": try row.decode("spend"),
            "gpuHoursPerMonth": try row.decode("gpu_hours"),
        ]
        return counters
    }
}

extension StoreError {
    /// A refusal a dry run answers with (capacity, quota, budget), not throws.
    var isLimitRefusal: Bool {
        switch self {
        case .insufficientCapacity, .quotaExceeded, .budgetExceeded: return true
        default: return false
        }
    }
}
