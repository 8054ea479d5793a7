import BrokerCore
import Foundation
import PostgresClient

/// Grants, scaling, renewal and release of allocations, and the ledger rows that
/// record each change. Every method is one transaction; placement is planned inside
/// it from fresh inventory and reserved with conditional counter updates, so no
/// pool is ever granted past its capacity however many brokers run.
public struct AllocationStore: Sendable {
    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
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
        let fingerprint = String(decoding: try Self.canonicalEncoder.encode(request), as: UTF8.self)
        return try await retryingLostRaces {
            try await pool.withTransaction { c in
                if let key = idempotencyKey,
                    let replay = try Self.claimIdempotencyKey(c, tenantId: tenantId, key: key, fingerprint: fingerprint)
                {
                    return replay
                }
                let view = try Self.grant(c, tenantId: tenantId, request: request, actor: actor)
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

    /// Plans and reserves a new allocation, or records it as pending with `queue`.
    static func grant(_ c: PostgresConnection, tenantId: UUID, request: AllocationRequest, actor: String) throws -> AllocationView {
        var request = request
        if request.placement == nil, request.region == nil,
            let named = PolicySelector.select(try PolicyStore.policies(c, tenantId: tenantId), labels: request.labels)
        {
            request.placement = named.policy
        }
        let (plan, inventory) = try plan(c, request, replicas: request.replicas, held: [])
        let id = UUID()
        if !acceptable(plan, request) {
            guard request.queue else {
                throw StoreError.insufficientCapacity(shortfall(request.replicas, plan), decisions: plan.decisions)
            }
            try c.query(
                """
                INSERT INTO allocations (id, tenant_id, status, request, replicas, labels, decisions,
                                         lease_seconds, queue_deadline)
                VALUES ($1, $2, 'pending', $3::jsonb, $4, $5::jsonb, $6::jsonb, $7,
                        now() + make_interval(secs => $8))
                """,
                [id, tenantId, try PostgresJSON(request), request.replicas, try PostgresJSON(request.labels),
                 try PostgresJSON(plan.decisions), request.leaseSeconds, request.queueTimeoutSeconds])
            return try load(c, id: id, tenantId: tenantId)
        }
        try QuotaCheck.verify(c, tenantId: tenantId, adding: plan.placed, shape: request.shape)
        try c.query(
            """
            INSERT INTO allocations (id, tenant_id, status, request, replicas, placed_replicas, labels,
                                     decisions, lease_seconds, lease_expires_at)
            VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7::jsonb, $8::jsonb, $9::int, now() + make_interval(secs => $9::int))
            """,
            [id, tenantId, (plan.satisfied ? AllocationStatus.active : .partial).rawValue,
             try PostgresJSON(request), request.replicas, plan.placed, try PostgresJSON(request.labels),
             try PostgresJSON(plan.decisions), request.leaseSeconds])
        try reserve(c, allocationId: id, plan: plan, inventory: inventory, held: [], actor: actor)
        return try load(c, id: id, tenantId: tenantId)
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
                    let (plan, inventory) = try Self.plan(c, request, replicas: replicas - live.count, held: held)
                    if !Self.acceptable(plan, request) {
                        throw StoreError.insufficientCapacity(
                            Self.shortfall(replicas - live.count, plan), decisions: plan.decisions)
                    }
                    try QuotaCheck.verify(c, tenantId: tenantId, adding: plan.placed, shape: request.shape)
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

    /// Plans `replicas` new replicas of a request from fresh inventory.
    static func plan(
        _ c: PostgresConnection, _ request: AllocationRequest, replicas: Int, held: [HeldReplicas]
    ) throws -> (PlacementPlan, [RegionInventory]) {
        let inventory = try InventoryStore.snapshot(c)
        let plan = PlacementPlanner.plan(
            PlacementInput(
                shape: effectiveShape(request), replicas: replicas, pinnedRegion: request.region,
                policy: request.placement, allOrNothing: request.allOrNothing, held: held, inventory: inventory))
        return (plan, inventory)
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
                    attempt += 1
                    guard attempt < Self.maxPlanningAttempts else {
                        throw StoreError.unavailable("lost \(attempt) reservation races in a row under contention")
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

    /// Reserves a plan: idle warm instances of each pool first (most recently idled),
    /// then new capacity with a conditional counter update; throws `LostRace` when a
    /// pool no longer has what the plan counted on. Instances and their ledger rows
    /// are written in one statement.
    static func reserve(
        _ c: PostgresConnection, allocationId: UUID, plan: PlacementPlan, inventory: [RegionInventory],
        held: [HeldReplicas], actor: String
    ) throws {
        var regions: [String: RegionInventory] = [:]
        for region in inventory { regions[region.region.id] = region }
        var inRegion: [String: Int] = [:]
        for h in held { inRegion[h.region, default: 0] += h.count }
        var rows = InstanceRows()
        for placement in plan.placements {
            guard let region = regions[placement.region],
                let usage = region.pools.first(where: { $0.pool.id == placement.poolId })
            else { throw LostRace() }
            var reused: [UUID] = []
            if usage.idle > 0 {
                reused = try c.query(
                    """
                    UPDATE instances SET state = 'released', ended_at = clock_timestamp()
                    WHERE seq IN (SELECT seq FROM instances
                                  WHERE region_id = $1 AND pool_id = $2 AND state = 'idle'
                                  ORDER BY idle_since DESC, seq DESC LIMIT $3 FOR UPDATE SKIP LOCKED)
                    RETURNING id
                    """,
                    [placement.region, placement.poolId, placement.count]
                ).map { try $0.decode("id") }
            }
            let fresh = placement.count - reused.count
            let updated = try c.query(
                """
                UPDATE pools SET allocated = allocated + $3, idle = idle - $4, updated_at = now()
                WHERE region_id = $1 AND id = $2 AND allocated + $3 <= capacity AND idle >= $4
                RETURNING 1
                """,
                [placement.region, placement.poolId, fresh, reused.count])
            if updated.isEmpty { throw LostRace() }
            let vSwitches = VSwitchAssigner.assign(
                vSwitchIds: region.region.vSwitchIds, alreadyInRegion: inRegion[placement.region, default: 0],
                count: placement.count)
            inRegion[placement.region, default: 0] += placement.count
            for index in 0..<placement.count {
                rows.append(
                    id: index < reused.count ? reused[index] : UUID(), reused: index < reused.count,
                    pool: usage.pool, region: region.region, vSwitch: vSwitches[index], unit: placement.unit)
            }
        }
        try c.query(
            """
            WITH added AS (
                INSERT INTO instances (id, allocation_id, region_id, pool_id, instance_type, gpu_series, gpu_count,
                                       cpu, memory_gib, vpc_id, vswitch_id, security_group_id, unit, state, reused)
                SELECT u.id::uuid, $1, u.region_id, u.pool_id, u.instance_type, nullif(u.gpu_series, ''),
                       u.gpu_count::int, u.cpu::float8, u.memory_gib::float8, u.vpc_id, u.vswitch_id,
                       u.security_group_id, nullif(u.unit, '')::int, 'running', u.reused::boolean
                FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                            $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[])
                     AS u(id, region_id, pool_id, instance_type, gpu_series, gpu_count, cpu, memory_gib, vpc_id,
                          vswitch_id, security_group_id, unit, reused)
                RETURNING id, region_id, pool_id, reused
            )
            INSERT INTO ledger (kind, region_id, pool_id, allocation_id, instance_id, delta, actor)
            SELECT 'reserved', region_id, pool_id, $1, id, CASE WHEN reused THEN 0 ELSE 1 END, $15 FROM added
            """,
            [allocationId] + rows.columns + [actor])
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

/// Column-wise text arrays for the one-statement instance insert.
struct InstanceRows {
    private var ids: [String] = [], regions: [String] = [], pools: [String] = [], types: [String] = []
    private var series: [String] = [], gpus: [String] = [], cpus: [String] = [], memory: [String] = []
    private var vpcs: [String] = [], vSwitches: [String] = [], groups: [String] = [], units: [String] = []
    private var reused: [String] = []

    mutating func append(id: UUID, reused isReused: Bool, pool: Pool, region: Region, vSwitch: String, unit: Int?) {
        ids.append(id.uuidString)
        regions.append(region.id)
        pools.append(pool.id)
        types.append(pool.instanceType)
        series.append(pool.gpuSeries ?? "")
        gpus.append(String(pool.gpusPerInstance ?? 0))
        cpus.append(String(pool.cpu))
        memory.append(String(pool.memoryGiB))
        vpcs.append(region.vpcId)
        vSwitches.append(vSwitch)
        groups.append(region.securityGroupId)
        units.append(unit.map(String.init) ?? "")
        reused.append(isReused ? "t" : "f")
    }

    var columns: [any PostgresEncodable] {
        [ids, regions, pools, types, series, gpus, cpus, memory, vpcs, vSwitches, groups, units, reused]
    }
}

extension UUID {
    /// The lowercase form the API prints.
    var lowercased: String { uuidString.lowercased() }
}
