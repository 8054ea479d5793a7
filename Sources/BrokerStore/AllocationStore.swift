import BrokerCore
import Foundation
import PostgresClient
import Synchronization

/// Grants, scaling, renewal and release of allocations, and the ledger rows that
/// record each change. Every method is one transaction; placement is planned inside
/// it from fresh inventory and reserved with conditional counter updates, so no
/// pool is ever granted past its capacity however many brokers run.
public struct AllocationStore: Sendable {
    let pool: PostgresPool

    let snapshots: InventorySnapshots

    let batcher: GrantBatcher

    /// Tenant settings for grants outside a transaction, reused for a second: the
    /// batch checks in the database that they still hold (migration 3).
    let settings: ShortLivedCache<UUID, TenantSettings>

    /// `snapshotSeconds`: how long grants outside a transaction reuse one inventory
    /// snapshot (0 = always read). Reuse is safe: reservations check capacity and region
    /// state in the database, a lost race reads afresh, and a plan that cannot be met
    /// from a reused snapshot is made again from a fresh one before any 409.
    public init(pool: PostgresPool, snapshotSeconds: Double = 0.05) {
        self.pool = pool
        self.snapshots = InventorySnapshots(maxAge: .milliseconds(Int64(snapshotSeconds * 1000)))
        self.batcher = GrantBatcher(pool: pool)
        self.settings = ShortLivedCache(lifetime: .seconds(1))
    }

    /// A conditional reservation found less capacity than the plan assumed: another
    /// grant won the race. The transaction is rolled back and planned again.
    struct LostRace: Error {}

    static let maxPlanningAttempts = 8

    // MARK: create

    /// Grants a request. With an idempotency key, the key is recorded in the grant's
    /// own transaction: the same key and request replay the first answer, another
    /// request with the key is refused, and a concurrent duplicate waits on the key's
    /// row until the first commits (or rolls back, and then plans anew).
    public func create(
        tenantId: UUID, request: AllocationRequest, actor: String, idempotencyKey: String? = nil
    ) async throws -> AllocationView {
        if idempotencyKey == nil {
            do {
                let settings = self.settings
                return try await retryingLostRaces {
                    let inventory = try await snapshots.current(pool).regions
                    let step: GrantStep
                    do {
                        // Planned on this task: with the tenant's settings cached, a grant
                        // needs the database only for the batched statement.
                        step = try Self.prepareGrant(
                            nil, tenantId: tenantId, request: request, actor: actor, inTransaction: false,
                            recentInventory: inventory, settings: settings)
                    } catch is NeedsConnection {
                        step = try await pool.withConnection { c in
                            try Self.prepareGrant(
                                c, tenantId: tenantId, request: request, actor: actor, inTransaction: false,
                                recentInventory: inventory, settings: settings)
                        }
                    }
                    switch step {
                    case .answered(let view):
                        return view
                    case .reserve(let grant):
                        do {
                            return grant.view(instances: try await batcher.grant(grant.reservation))
                        } catch let lost as LostRace {
                            settings.forget(tenantId)
                            throw lost
                        }
                    }
                }
            } catch is NeedsTransaction {
                // Quota or preemption: the general path below, in one transaction.
            }
        }
        let fingerprint = String(decoding: try Self.canonicalEncoder.encode(request), as: UTF8.self)
        return try await retryingLostRaces {
            try await pool.withTransaction { c in
                if let key = idempotencyKey,
                    let replay = try Self.claimIdempotencyKey(c, tenantId: tenantId, key: key, fingerprint: fingerprint)
                {
                    return replay
                }
                let view: AllocationView
                switch try Self.prepareGrant(c, tenantId: tenantId, request: request, actor: actor, inTransaction: true) {
                case .answered(let answered):
                    view = answered
                case .reserve(let grant):
                    view = grant.view(instances: try grant.reservation.reserve(c))
                }
                if let key = idempotencyKey {
                    try c.query(
                        "UPDATE idempotency_keys SET response = $3, allocation_id = $4 WHERE tenant_id = $1 AND key = $2",
                        [tenantId, key, String(decoding: try Self.canonicalEncoder.encode(view), as: UTF8.self), view.id])
                }
                return view
            }
        }
    }

    static let canonicalEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    /// Claims `key` for this grant, or returns the answer already recorded under it.
    static func claimIdempotencyKey(
        _ c: PostgresConnection, tenantId: UUID, key: String, fingerprint: String
    ) throws -> AllocationView? {
        let claimed = try c.query(
            """
            INSERT INTO idempotency_keys (tenant_id, key, request_hash) VALUES ($1, $2, sha256(convert_to($3, 'UTF8')))
            ON CONFLICT (tenant_id, key) DO NOTHING RETURNING 1
            """,
            [tenantId, key, fingerprint])
        if !claimed.isEmpty { return nil }
        let rows = try c.query(
            """
            SELECT request_hash = sha256(convert_to($3, 'UTF8')) AS same, response
            FROM idempotency_keys WHERE tenant_id = $1 AND key = $2
            """,
            [tenantId, key, fingerprint])
        guard try rows[0].decode("same", as: Bool.self) else { throw StoreError.idempotencyKeyReused }
        let response: String = try rows[0].decode("response")
        return try JSONDecoder().decode(AllocationView.self, from: Data(response.utf8))
    }

    /// A grant that must run inside one transaction (a quota to check under the
    /// tenant's lock, or instances to preempt first) was started without one.
    struct NeedsTransaction: Error {}

    /// Planning without a connection (`prepareGrant(nil, ...)`) came to a step that reads
    /// or writes; it is planned again with one.
    struct NeedsConnection: Error {}

    static func connection(_ c: PostgresConnection?) throws -> PostgresConnection {
        guard let c else { throw NeedsConnection() }
        return c
    }

    /// What a grant decided before reserving.
    enum GrantStep: Sendable {
        /// Nothing to reserve: the allocation was recorded as pending.
        case answered(AllocationView)
        case reserve(PlannedGrant)
    }

    /// A plan to reserve, and how to answer once its instances exist.
    struct PlannedGrant: Sendable {
        var reservation: GrantReservation
        var request: AllocationRequest
        var plan: PlacementPlan

        /// The answer, built from the rows the grant returned without reading back.
        /// `gpb_grant` creates the allocation and its instances at the transaction's time.
        func view(instances: [InstanceView]) -> AllocationView {
            let createdAt = instances[0].createdAt
            return AllocationView(
                id: reservation.allocationId, status: plan.satisfied ? .active : .partial, replicas: request.replicas,
                placedReplicas: plan.placed, instances: instances, leaseSeconds: request.leaseSeconds,
                leaseExpiresAt: createdAt.addingTimeInterval(TimeInterval(request.leaseSeconds)), queueDeadline: nil,
                createdAt: createdAt, updatedAt: createdAt, labels: request.labels, decisions: plan.decisions,
                request: request)
        }
    }

    /// Plans a new allocation, or records it as pending with `queue`. Outside a
    /// transaction the only write is one statement (the pending insert, or later the
    /// batched `gpb_grant`), so the grant is still atomic; what needs more (a quota to
    /// check under the tenant's lock, instances to preempt) throws `NeedsTransaction`.
    /// Without a connection (`c` nil), what needs one throws `NeedsConnection`.
    static func prepareGrant(
        _ c: PostgresConnection?, tenantId: UUID, request: AllocationRequest, actor: String, inTransaction: Bool,
        recentInventory: [RegionInventory]? = nil, settings cache: ShortLivedCache<UUID, TenantSettings>? = nil
    ) throws -> GrantStep {
        let settings = try cache?.lookup(tenantId) ?? TenantSettings.load(connection(c), tenantId: tenantId)
        cache?.remember(tenantId, settings)
        var request = request
        if request.placement == nil, request.region == nil,
            let named = PolicySelector.select(settings.policies, labels: request.labels)
        {
            request.placement = named.policy
        }
        var (plan, inventory) = try plan(c, request, replicas: request.replicas, held: [], inventory: recentInventory)
        if !acceptable(plan, request), recentInventory != nil {
            (plan, inventory) = try Self.plan(connection(c), request, replicas: request.replicas, held: [])
        }
        var victims: [Int64] = []
        if !acceptable(plan, request) {
            guard inTransaction || request.shape.qos != .default else { throw NeedsTransaction() }
            if let preemption = try planPreemption(connection(c), request, replicas: request.replicas, held: []) {
                (plan, inventory, victims) = preemption
            }
        }
        let id = UUID()
        if !acceptable(plan, request) {
            guard request.queue else {
                throw StoreError.insufficientCapacity(shortfall(request.replicas, plan), decisions: plan.decisions)
            }
            let row = try connection(c).query(
                """
                INSERT INTO allocations AS a (id, tenant_id, status, request, replicas, labels, decisions,
                                              lease_seconds, queue_deadline)
                VALUES ($1, $2, 'pending', $3::jsonb, $4, $5::jsonb, $6::jsonb, $7,
                        now() + make_interval(secs => $8))
                RETURNING \(AllocationRows.allocationColumns)
                """,
                [id, tenantId, try PostgresJSON(request), request.replicas, try PostgresJSON(request.labels),
                 try PostgresJSON(plan.decisions), request.leaseSeconds, request.queueTimeoutSeconds])[0]
            return .answered(try AllocationRows.allocation(row, instances: []))
        }
        if !settings.quota.isUnlimited {
            guard inTransaction else { throw NeedsTransaction() }
            try QuotaCheck.verify(
                connection(c), tenantId: tenantId, quota: settings.quota, adding: plan.placed, shape: request.shape)
        }
        if !victims.isEmpty { try preempt(connection(c), instanceSeqs: victims, for: id, actor: actor) }
        let record = GrantRecord(
            id: ResourceID(id), tenantId: ResourceID(tenantId), status: plan.satisfied ? .active : .partial,
            request: request, replicas: request.replicas, placedReplicas: plan.placed, labels: request.labels,
            decisions: plan.decisions, leaseSeconds: request.leaseSeconds)
        let reservation = GrantReservation(
            allocationId: record.id,
            allocation: PostgresJSON(rawJSON: try SortedJSONEncoder(date: PostgresTimestamp.format).encodeText(record)),
            placements: try placements(plan, inventory: inventory, held: []), actor: actor,
            policiesVersion: settings.policiesVersion)
        return .reserve(PlannedGrant(reservation: reservation, request: request, plan: plan))
    }

    /// The allocation row `gpb_grant` inserts.
    struct GrantRecord: JSONWritable {
        var id: ResourceID
        var tenantId: ResourceID
        var status: AllocationStatus
        var request: AllocationRequest
        var replicas: Int
        var placedReplicas: Int
        var labels: [String: String]
        var decisions: [PlacementDecision]
        var leaseSeconds: Int

        func write(to json: inout JSONWriter) {
            json.beginObject()
            json.member("decisions", decisions)
            json.member("id", id)
            json.member("labels", labels)
            json.member("leaseSeconds", leaseSeconds)
            json.member("placedReplicas", placedReplicas)
            json.member("replicas", replicas)
            json.member("request", request)
            json.member("status", status)
            json.member("tenantId", tenantId)
            json.endObject()
        }
    }

    // MARK: read

    public func get(tenantId: UUID, id: UUID) async throws -> AllocationView {
        try await StoreError.translating {
            try await pool.withConnection { c in try Self.load(c, id: id, tenantId: tenantId) }
        }
    }

    public struct Page: Sendable {
        public var allocations: [AllocationView]
        public var nextCursor: String?
    }

    /// Allocations in creation order. The cursor is the last sequence number seen,
    /// so pages stay stable while new allocations arrive.
    public func list(
        tenantId: UUID, limit: Int, after cursor: Int64?, status: AllocationStatus?, region: String?
    ) async throws -> Page {
        try await StoreError.translating {
            try await pool.withConnection { c in
                let rows = try c.query(
                    """
                    SELECT \(AllocationRows.allocationColumns) FROM allocations a
                    WHERE a.tenant_id = $1 AND a.seq > $2 AND ($3::text IS NULL OR a.status = $3)
                      AND ($4::text IS NULL OR EXISTS (
                          SELECT 1 FROM instances i WHERE i.allocation_id = a.id AND i.region_id = $4))
                    ORDER BY a.seq LIMIT $5
                    """,
                    [tenantId, cursor ?? 0, status?.rawValue, region, limit + 1])
                let page = Array(rows.prefix(limit))
                let ids = try page.map { row -> String in (try row.decode("id") as UUID).uuidString }
                let instances = try Self.instances(c, allocationIds: ids)
                let views = try page.map { row in
                    try AllocationRows.allocation(row, instances: instances[try row.decode("id"), default: []])
                }
                let next: String? = rows.count > limit ? String(try page[page.count - 1].decode("seq") as Int64) : nil
                return Page(allocations: views, nextCursor: next)
            }
        }
    }

    public func events(tenantId: UUID, id: UUID) async throws -> [LedgerEvent] {
        try await StoreError.translating {
            try await pool.withConnection { c in
                try Self.requireOwned(c, id: id, tenantId: tenantId)
                return try c.query(
                    """
                    SELECT seq, at, kind, region_id, pool_id, instance_id, delta, actor
                    FROM ledger WHERE allocation_id = $1 ORDER BY seq
                    """,
                    [id]
                ).map { row in
                    LedgerEvent(
                        seq: try row.decode("seq"), at: try row.decode("at"), kind: try row.decode("kind"),
                        region: try row.decodeIfPresent("region_id"), poolId: try row.decodeIfPresent("pool_id"),
                        instanceId: try row.decodeIfPresent("instance_id"), delta: try row.decode("delta"),
                        actor: try row.decode("actor"))
                }
            }
        }
    }

    // MARK: change

    /// Scales out with the allocation's own placement (unit `max` counts what it
    /// holds) or scales in, releasing the last unit's instances first, newest first.
    public func scale(tenantId: UUID, id: UUID, replicas: Int, actor: String) async throws -> AllocationView {
        try await retryingLostRaces {
            try await pool.withTransaction { c in
                let request = try Self.lockLive(c, id: id, tenantId: tenantId)
                let live = try Self.runningInstances(c, allocationId: id)
                var placed = live.count
                var decisions: [PlacementDecision]? = nil
                if replicas > live.count {
                    let held = Self.held(live)
                    var (plan, inventory) = try Self.plan(c, request, replicas: replicas - live.count, held: held)
                    var victims: [Int64] = []
                    if !Self.acceptable(plan, request),
                        let preemption = try Self.planPreemption(c, request, replicas: replicas - live.count, held: held)
                    {
                        (plan, inventory, victims) = preemption
                    }
                    if !Self.acceptable(plan, request) {
                        throw StoreError.insufficientCapacity(
                            Self.shortfall(replicas - live.count, plan), decisions: plan.decisions)
                    }
                    try QuotaCheck.verify(
                        c, tenantId: tenantId, quota: try TenantSettings.load(c, tenantId: tenantId).quota,
                        adding: plan.placed, shape: request.shape)
                    try Self.preempt(c, instanceSeqs: victims, for: id, actor: actor)
                    try Self.reserve(c, allocationId: id, plan: plan, inventory: inventory, held: held, actor: actor)
                    placed += plan.placed
                    decisions = plan.decisions
                } else if replicas < live.count {
                    let chosen = ScaleInSelector.select(
                        live.map { .init(id: String($0.seq), unit: $0.unit, sequence: $0.seq) },
                        releasing: live.count - replicas)
                    try Self.release(c, instanceSeqs: chosen.compactMap { Int64($0) }, kind: "released", actor: actor)
                    placed = replicas
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
        }
    }

    /// Extends the lease from now. An allocation whose lease already ran out is
    /// expired, even if the reconciler has not got to it yet.
    public func renew(tenantId: UUID, id: UUID, leaseSeconds: Int?, actor: String) async throws -> AllocationView {
        try await StoreError.translating {
            try await pool.withTransaction { c in
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
        }
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

    // MARK: shared steps

    /// Plans `replicas` new replicas of a request, from `recent` or else from fresh inventory.
    static func plan(
        _ c: PostgresConnection?, _ request: AllocationRequest, replicas: Int, held: [HeldReplicas],
        inventory recent: [RegionInventory]? = nil
    ) throws -> (PlacementPlan, [RegionInventory]) {
        let inventory = try recent ?? InventoryStore.snapshot(connection(c))
        let plan = PlacementPlanner.plan(
            PlacementInput(
                shape: effectiveShape(request), replicas: replicas, pinnedRegion: request.region,
                policy: request.placement, allOrNothing: request.allOrNothing, held: held, inventory: inventory))
        return (plan, inventory)
    }

    /// Rule 8: a default-QoS request that cannot be met otherwise may reclaim
    /// best-effort instances on its candidate pools, newest first, as few as it needs.
    /// Returns the plan over the inventory with those instances freed, and the
    /// instances to preempt; nil when even that would not meet the request. The
    /// victims are locked here, so no one else releases or preempts them meanwhile.
    static func planPreemption(
        _ c: PostgresConnection, _ request: AllocationRequest, replicas: Int, held: [HeldReplicas]
    ) throws -> (PlacementPlan, [RegionInventory], [Int64])? {
        guard request.shape.qos == .default else { return nil }
        let shape = effectiveShape(request)
        var inventory = try InventoryStore.snapshot(c)
        let candidatePools = inventory.flatMap { region in
            PlacementPlanner.candidatePools(shape, in: region).map { "\(region.region.id)/\($0.pool.id)" }
        }
        if candidatePools.isEmpty { return nil }
        let victims = try c.query(
            """
            SELECT i.seq, i.region_id, i.pool_id FROM instances i JOIN allocations a ON a.id = i.allocation_id
            WHERE i.state = 'running' AND a.request->'shape'->>'qos' = 'best-effort'
              AND i.region_id || '/' || i.pool_id = ANY($1::text[])
            ORDER BY i.seq DESC LIMIT $2 FOR UPDATE OF i SKIP LOCKED
            """,
            [candidatePools, replicas]
        ).map { (seq: try $0.decode("seq", as: Int64.self), key: "\(try $0.decode("region_id", as: String.self))/\(try $0.decode("pool_id", as: String.self))") }
        var chosen: [Int64] = []
        for victim in victims {
            chosen.append(victim.seq)
            for r in inventory.indices {
                for p in inventory[r].pools.indices
                where "\(inventory[r].region.id)/\(inventory[r].pools[p].pool.id)" == victim.key {
                    inventory[r].pools[p].allocated -= 1
                }
            }
            let plan = PlacementPlanner.plan(
                PlacementInput(
                    shape: shape, replicas: replicas, pinnedRegion: request.region, policy: request.placement,
                    allOrNothing: request.allOrNothing, held: held, inventory: inventory))
            if acceptable(plan, request) && (plan.satisfied || chosen.count == victims.count) {
                var decisions = plan.decisions
                decisions.append(
                    PlacementDecision(
                        region: "*", replicas: 0,
                        reason: "preempted \(chosen.count) best-effort instance\(chosen.count == 1 ? "" : "s") to make room"))
                return (
                    PlacementPlan(placements: plan.placements, decisions: decisions, placed: plan.placed, satisfied: plan.satisfied),
                    inventory, chosen
                )
            }
        }
        return nil
    }

    /// Takes preempted instances out of service at once (no warm idle: their capacity
    /// goes to the preempting allocation) and marks their allocations partial.
    static func preempt(_ c: PostgresConnection, instanceSeqs: [Int64], for allocationId: UUID, actor: String) throws {
        if instanceSeqs.isEmpty { return }
        try c.query(
            """
            WITH taken AS (
                UPDATE instances SET state = 'preempted', ended_at = clock_timestamp()
                WHERE seq = ANY($1::bigint[]) AND state = 'running'
                RETURNING id, allocation_id, region_id, pool_id
            ), counters AS (
                UPDATE pools p SET allocated = p.allocated - t.n, updated_at = now()
                FROM (SELECT region_id, pool_id, count(*)::int AS n FROM taken GROUP BY region_id, pool_id) t
                WHERE p.region_id = t.region_id AND p.id = t.pool_id
            ), victims AS (
                UPDATE allocations a
                SET placed_replicas = a.placed_replicas - v.n, status = 'partial', updated_at = clock_timestamp(),
                    decisions = a.decisions || jsonb_build_array(jsonb_build_object(
                        'region', '*', 'replicas', 0,
                        'reason', format('%s instance(s) preempted by default-QoS allocation %s', v.n, $2::text)))
                FROM (SELECT allocation_id, count(*)::int AS n FROM taken GROUP BY allocation_id) v
                WHERE a.id = v.allocation_id
            )
            INSERT INTO ledger (kind, region_id, pool_id, allocation_id, instance_id, delta, actor)
            SELECT 'preempted', region_id, pool_id, allocation_id, id, -1, $3 FROM taken
            """,
            [instanceSeqs.map(String.init), allocationId.lowercased, actor])
    }

    /// Rule 5: all replicas, or with `allOrNothing: false` at least one.
    static func acceptable(_ plan: PlacementPlan, _ request: AllocationRequest) -> Bool {
        plan.placed > 0 && (plan.satisfied || !request.allOrNothing)
    }

    /// The request's shape with the GPU memory a `model` needs, per the sizing rule.
    static func effectiveShape(_ request: AllocationRequest) -> ComputeShape {
        var shape = request.shape
        if let model = request.model {
            shape.requiredGPUMemoryGiB = ModelSizing.size(model).requiredGiB
        }
        return shape
    }

    static func shortfall(_ wanted: Int, _ plan: PlacementPlan) -> String {
        "\(wanted) replicas requested, \(plan.placed) can be placed now"
    }

    /// Plans again after a lost race, with a short random backoff so the losers of one
    /// race do not collide again at once. When every attempt lost, the answer is 503
    /// with Retry-After (nothing was reserved; retrying is safe), never a 500.
    func retryingLostRaces<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await StoreError.translating {
            var attempt = 0
            while true {
                do {
                    return try await body()
                } catch is LostRace {
                    snapshots.invalidate()
                    attempt += 1
                    guard attempt < Self.maxPlanningAttempts else {
                        throw StoreError.unavailable(
                            "capacity is heavily contended: \(attempt) reservations in a row lost the race; retry shortly")
                    }
                    try await Task.sleep(for: .milliseconds(Int.random(in: 1...(4 << min(attempt, 4)))))
                }
            }
        }
    }

    struct LiveInstance {
        var seq: Int64
        var region: String
        var unit: Int?
    }

    static func runningInstances(_ c: PostgresConnection, allocationId: UUID) throws -> [LiveInstance] {
        try c.query(
            "SELECT seq, region_id, unit FROM instances WHERE allocation_id = $1 AND state = 'running' ORDER BY seq",
            [allocationId]
        ).map { LiveInstance(seq: try $0.decode("seq"), region: try $0.decode("region_id"), unit: try $0.decodeIfPresent("unit")) }
    }

    static func held(_ live: [LiveInstance]) -> [HeldReplicas] {
        var counts: [String: HeldReplicas] = [:]
        var order: [String] = []
        for instance in live {
            let key = "\(instance.region)/\(instance.unit.map(String.init) ?? "-")"
            if counts[key] == nil {
                order.append(key)
                counts[key] = HeldReplicas(region: instance.region, unit: instance.unit, count: 0)
            }
            counts[key]!.count += 1
        }
        return order.map { counts[$0]! }
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

    @discardableResult
    static func requireOwned(_ c: PostgresConnection, id: UUID, tenantId: UUID) throws -> AllocationStatus {
        let rows = try c.query("SELECT status FROM allocations WHERE id = $1 AND tenant_id = $2", [id, tenantId])
        guard let row = rows.first else { throw StoreError.notFound("allocation \(id.lowercased) not found") }
        return try enumValue(row, "status")
    }

    /// Reserves a plan for an existing allocation in one round trip (`gpb_reserve`,
    /// migration 2). Returns the new instances.
    @discardableResult
    static func reserve(
        _ c: PostgresConnection, allocationId: UUID, plan: PlacementPlan, inventory: [RegionInventory],
        held: [HeldReplicas], actor: String
    ) throws -> [InstanceView] {
        try reservation(
            c, "SELECT * FROM gpb_reserve($1, $2::jsonb, $3)",
            [allocationId, try placements(plan, inventory: inventory, held: held), actor])
    }

    /// Runs `gpb_reserve` or `gpb_grant`: idle warm instances of each pool first, then
    /// new capacity with a conditional counter update, instances and ledger rows
    /// written together. Their SQLSTATE GB001 (a pool no longer has what the plan
    /// counted on) becomes `LostRace`, and the caller plans again.
    static func reservation(_ c: PostgresConnection, _ sql: String, _ binds: [any PostgresEncodable]) throws -> [InstanceView] {
        do {
            return try c.query(sql, binds).map(AllocationRows.instance)
        } catch let error as PostgresError where error.sqlState == .planNoLongerFits {
            throw LostRace()
        }
    }

    /// A plan's placements as the reservation functions take them, each with its
    /// instances' vSwitches (rule 7: round robin, after those the allocation holds).
    static func placements(_ plan: PlacementPlan, inventory: [RegionInventory], held: [HeldReplicas]) throws -> PostgresJSON {
        var vSwitchIds: [String: [String]] = [:]
        for region in inventory { vSwitchIds[region.region.id] = region.region.vSwitchIds }
        var inRegion: [String: Int] = [:]
        for h in held { inRegion[h.region, default: 0] += h.count }
        var placements: [JSONValue] = []
        for placement in plan.placements {
            let vSwitches = VSwitchAssigner.assign(
                vSwitchIds: vSwitchIds[placement.region] ?? [], alreadyInRegion: inRegion[placement.region, default: 0],
                count: placement.count)
            inRegion[placement.region, default: 0] += placement.count
            placements.append([
                "region": .string(placement.region), "pool": .string(placement.poolId),
                "count": .number(Double(placement.count)),
                "unit": placement.unit.map { .number(Double($0)) } ?? .null,
                "vSwitches": .array(vSwitches.map(JSONValue.string)),
            ])
        }
        return PostgresJSON(rawJSON: JSONValue.array(placements).jsonText)
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

    static func load(_ c: PostgresConnection, id: UUID, tenantId: UUID) throws -> AllocationView {
        let rows = try c.query(
            "SELECT \(AllocationRows.allocationColumns) FROM allocations a WHERE a.id = $1 AND a.tenant_id = $2",
            [id, tenantId])
        guard let row = rows.first else { throw StoreError.notFound("allocation \(id.lowercased) not found") }
        let instances = try Self.instances(c, allocationIds: [id.uuidString])
        return try AllocationRows.allocation(row, instances: instances[id, default: []])
    }

    static func instances(_ c: PostgresConnection, allocationIds: [String]) throws -> [UUID: [InstanceView]] {
        if allocationIds.isEmpty { return [:] }
        var result: [UUID: [InstanceView]] = [:]
        for row in try c.query(
            "SELECT \(AllocationRows.instanceColumns) FROM instances i WHERE i.allocation_id = ANY($1::uuid[]) ORDER BY i.seq",
            [allocationIds])
        {
            result[try row.decode("allocation_id"), default: []].append(try AllocationRows.instance(row))
        }
        return result
    }
}

extension UUID {
    /// The lowercase form the API prints.
    var lowercased: String { uuidString.lowercased() }
}
