import Foundation

/// Everything a grant is planned from, read by the store beforehand.
public struct GrantInput: Sendable {
    public var request: AllocationRequest
    /// New replicas to place: all of them for a new allocation, the difference for a scale-out.
    public var replicas: Int
    public var inventory: [RegionInventory]
    /// `inventory`'s index, when it comes from an `Inventory` (see `PlacementInput.index`).
    public var index: InventoryIndex?
    /// What the allocation already holds (scale-out).
    public var held: [HeldReplicas] = []
    /// The tenant's named policies (rule 2), for a request that names no placement or region.
    public var policies: [NamedPolicy] = []
    /// A request that cannot be met may wait as pending (`queue`, new allocations only).
    public var mayQueue = false
    /// Best-effort instances on the request's candidate pools, newest first (rule 8); nil
    /// when not read. Reading them locks them, so the store reads them only when a plan
    /// asks for them (`wantsPreemptionCandidates`).
    public var preemptible: [PreemptionCandidate]?

    public init(request: AllocationRequest, replicas: Int? = nil, inventory: [RegionInventory]) {
        self.request = request
        self.replicas = replicas ?? request.replicas
        self.inventory = inventory
    }

    public init(request: AllocationRequest, replicas: Int? = nil, inventory: Inventory) {
        self.init(request: request, replicas: replicas, inventory: inventory.regions)
        self.index = inventory.index
    }
}

/// A running best-effort instance a default-QoS grant may take over (rule 8).
public typealias PreemptionCandidate = (seq: Int64, region: String, poolId: String)

/// One pool's share of a plan, as the reservation functions take it (SQL type
/// `gpb_placement`: region, pool, count, unit, vswitches).
public struct PlacementRow: Sendable, Equatable, Encodable {
    public var placement: PlannedPlacement
    /// One per instance (rule 7).
    public var vSwitchIds: [String]
    /// Of the placement's count, the pool's idle instances the inventory showed, reused
    /// before new capacity is taken (rule 9). The database takes idle instances first on its own.
    public var reusing: Int

    enum CodingKeys: String, CodingKey { case count, pool, region, unit, vswitches }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(placement.count, forKey: .count)
        try container.encode(placement.poolId, forKey: .pool)
        try container.encode(placement.region, forKey: .region)
        try container.encodeIfPresent(placement.unit, forKey: .unit)
        try container.encode(vSwitchIds, forKey: .vswitches)
    }
}

/// What a grant will do. The store carries it out, and the database checks again what
/// could have changed since its inputs were read: each pool still has the idle or free
/// capacity the rows count on and each region is still active (else nothing is written
/// and the grant is planned again), and the tenant's usage stays within its quota (a
/// constraint of its `tenant_usage` counters, migration 5; the batch statement leaves
/// out the grants that would pass it). The quota is therefore no input to the plan.
public struct GrantPlan: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        /// Reserve `rows` (after preempting `victims`).
        case grant
        /// Record the allocation as pending with the decisions.
        case queue
        /// 409: cannot be met now.
        case refuse
    }

    /// The request with the tenant's matching named policy filled in (rule 2).
    public var request: AllocationRequest
    public var replicas: Int
    public var placement: PlacementPlan
    public var outcome: Outcome
    /// Empty unless the outcome is `grant`.
    public var rows: [PlacementRow]
    /// Instance sequence numbers to preempt first.
    public var victims: [Int64]
    /// The plan came short for a default-QoS request planned without preemption
    /// candidates: read them (`preemptionPools`) and plan again.
    public var wantsPreemptionCandidates: Bool
    /// `region/pool` keys of the pools whose best-effort instances may be preempted.
    public var preemptionPools: [String]

    public var decisions: [PlacementDecision] { placement.decisions }

    /// "4 replicas requested, 2 can be placed now", and why never when no pool could hold them.
    public var shortfall: String {
        let never = Unsatisfiable.reason(in: decisions)
        return "\(replicas) replicas requested, \(placement.placed) can be placed now" + (never.map { "; \($0)" } ?? "")
    }
}

/// A new allocation and the placements to reserve for it, as the grant functions take it:
/// the members of the SQL type `gpb_planned_grant` (definitions/grants.sql), snake_case.
public struct AllocationRecord: Encodable, Sendable {
    var id: ResourceID
    var tenantId: ResourceID
    var status: AllocationStatus
    var request: AllocationRequest
    var replicas: Int
    var placedReplicas: Int
    var labels: [String: String]
    var decisions: [PlacementDecision]
    var leaseSeconds: Int
    /// The request's price cap, which the database checks again once the pools are locked.
    var maxPricePerHour: Double?
    var placements: [PlacementRow]
    var actor: String
    /// md5 of the tenant's policies the plan was made with (`TenantSettings.policiesVersion`).
    var policies: String

    enum CodingKeys: String, CodingKey {
        case id = "allocation_id", tenantId = "tenant_id", status, request, replicas, placedReplicas = "placed_replicas"
        case labels, decisions, leaseSeconds = "lease_seconds", maxPricePerHour = "max_price_per_hour", placements
        case actor, policies
    }
}

extension GrantPlan {
    /// The allocation a granted plan creates, with what its grant needs.
    public func record(id: ResourceID, tenantId: ResourceID, actor: String, policiesVersion: String) -> AllocationRecord {
        AllocationRecord(
            id: id, tenantId: tenantId, status: placement.satisfied ? .active : .partial, request: request,
            replicas: request.replicas, placedReplicas: placement.placed, labels: request.labels, decisions: decisions,
            leaseSeconds: request.leaseSeconds, maxPricePerHour: GrantPlanner.effectiveShape(request).maxPricePerHour,
            placements: rows, actor: actor, policies: policiesVersion)
    }

    /// The answer for a granted plan, from the instances the grant created, without reading
    /// back: the database creates the allocation and its instances at one moment.
    public func view(id: ResourceID, instances: [InstanceView]) -> AllocationView {
        let createdAt = instances[0].createdAt
        return AllocationView(
            id: id, status: placement.satisfied ? .active : .partial, replicas: request.replicas,
            placedReplicas: placement.placed, instances: instances, leaseSeconds: request.leaseSeconds,
            leaseExpiresAt: createdAt.addingTimeInterval(TimeInterval(request.leaseSeconds)), queueDeadline: nil,
            createdAt: createdAt, updatedAt: createdAt, labels: request.labels, decisions: decisions, request: request)
    }
}

public enum GrantPlanner {
    public static func plan(_ input: GrantInput) -> GrantPlan {
        let request = resolvePolicy(input.request, input.policies)
        let shape = effectiveShape(request)
        var inventory = input.inventory
        var placement = place(request, shape, input, inventory)
        var victims: [Int64] = []
        var wantsCandidates = false
        var preemptionPools: [String] = []
        if !acceptable(placement, request), request.shape.qos == .default {
            if let candidates = input.preemptible {
                if let preempted = preemption(request, shape, input, inventory, candidates) {
                    (placement, inventory, victims) = preempted
                }
            } else {
                preemptionPools = candidatePoolKeys(shape, inventory)
                wantsCandidates = !preemptionPools.isEmpty
            }
        }
        let outcome: GrantPlan.Outcome =
            acceptable(placement, request) ? .grant : input.mayQueue && request.queue ? .queue : .refuse
        if outcome != .grant, input.held.isEmpty,
            let never = Unsatisfiable.decision(request, shape, replicas: input.replicas, inventory: inventory)
        {
            placement.decisions.append(never)
        }
        return GrantPlan(
            request: request, replicas: input.replicas, placement: placement, outcome: outcome,
            rows: outcome == .grant ? rows(placement, inventory: inventory, index: input.index, held: input.held) : [],
            victims: outcome == .grant ? victims : [],
            wantsPreemptionCandidates: outcome != .grant && wantsCandidates, preemptionPools: preemptionPools)
    }

    /// Rule 2: without `placement` or `region`, the tenant's policy whose selector matches
    /// the request's labels.
    public static func resolvePolicy(_ request: AllocationRequest, _ policies: [NamedPolicy]) -> AllocationRequest {
        guard request.placement == nil, request.region == nil,
            let named = PolicySelector.select(policies, labels: request.labels)
        else { return request }
        var request = request
        request.placement = named.policy
        return request
    }

    /// Rule 5: all replicas, or with `allOrNothing: false` at least one.
    public static func acceptable(_ plan: PlacementPlan, _ request: AllocationRequest) -> Bool {
        plan.placed > 0 && (plan.satisfied || !request.allOrNothing)
    }

    /// The request's shape with the GPU memory a `model` needs, per the sizing rule, and
    /// the lower of the request's and its placement's price caps.
    public static func effectiveShape(_ request: AllocationRequest) -> ComputeShape {
        var shape = request.shape
        if let model = request.model {
            shape.requiredGPUMemoryGiB = ModelSizing.size(model).requiredGiB
        }
        if let cap = request.placement?.maxPricePerHour {
            shape.maxPricePerHour = min(shape.maxPricePerHour ?? cap, cap)
        }
        return shape
    }

    static func place(
        _ request: AllocationRequest, _ shape: ComputeShape, _ input: GrantInput, _ inventory: [RegionInventory]
    ) -> PlacementPlan {
        var placement = PlacementInput(
            shape: shape, replicas: input.replicas, pinnedRegion: request.region, policy: request.placement,
            allOrNothing: request.allOrNothing, held: input.held, inventory: inventory)
        placement.index = input.index
        return PlacementPlanner.plan(placement)
    }

    static func candidatePoolKeys(_ shape: ComputeShape, _ inventory: [RegionInventory]) -> [String] {
        inventory.flatMap { region in
            PlacementPlanner.candidatePools(shape, in: region).map { "\(region.region.id)/\($0.pool.id)" }
        }
    }

    /// Rule 8: frees candidates newest first, as few as the request needs, and plans over
    /// the inventory without them. Nil when even all of them would not meet the request.
    static func preemption(
        _ request: AllocationRequest, _ shape: ComputeShape, _ input: GrantInput, _ inventory: [RegionInventory],
        _ candidates: [PreemptionCandidate]
    ) -> (PlacementPlan, [RegionInventory], [Int64])? {
        var inventory = inventory
        var chosen: [Int64] = []
        for victim in candidates.prefix(input.replicas) {
            chosen.append(victim.seq)
            for r in inventory.indices where inventory[r].region.id == victim.region {
                for p in inventory[r].pools.indices where inventory[r].pools[p].pool.id == victim.poolId {
                    inventory[r].pools[p].allocated -= 1
                }
            }
            var plan = place(request, shape, input, inventory)
            if acceptable(plan, request) && (plan.satisfied || chosen.count == min(candidates.count, input.replicas)) {
                plan.decisions.append(
                    PlacementDecision(
                        region: "*", replicas: 0,
                        reason: "preempted \(chosen.count) best-effort instance\(chosen.count == 1 ? "" : "s") to make room"))
                return (plan, inventory, chosen)
            }
        }
        return nil
    }

    /// A plan's placements with their instances' vSwitches (rule 7: round robin, after
    /// those the allocation holds) and the idle instances they reuse (rule 9).
    public static func rows(
        _ plan: PlacementPlan, inventory: [RegionInventory], index: InventoryIndex? = nil, held: [HeldReplicas]
    ) -> [PlacementRow] {
        var inRegion: [String: Int] = [:]
        for h in held { inRegion[h.region, default: 0] += h.count }
        var idleLeft: [String: Int] = [:]
        var rows: [PlacementRow] = []
        rows.reserveCapacity(plan.placements.count)
        for placement in plan.placements {
            let region: RegionInventory?
            if let index {
                region = index.position[placement.region].map { inventory[$0] }
            } else {
                region = inventory.first { $0.region.id == placement.region }
            }
            let key = placement.region + "/" + placement.poolId
            let idle = idleLeft[key] ?? region?.pools.first { $0.pool.id == placement.poolId }?.idle ?? 0
            let reusing = min(idle, placement.count)
            idleLeft[key] = idle - reusing
            rows.append(
                PlacementRow(
                    placement: placement,
                    vSwitchIds: VSwitchAssigner.assign(
                        vSwitchIds: region?.region.vSwitchIds ?? [], alreadyInRegion: inRegion[placement.region, default: 0],
                        count: placement.count),
                    reusing: reusing))
            inRegion[placement.region, default: 0] += placement.count
        }
        return rows
    }
}

extension HeldReplicas {
    /// Running instances counted per region and unit, in the order first seen.
    public static func counting(_ instances: [(region: String, unit: Int?)]) -> [HeldReplicas] {
        var held: [HeldReplicas] = []
        for instance in instances {
            if let k = held.firstIndex(where: { $0.region == instance.region && $0.unit == instance.unit }) {
                held[k].count += 1
            } else {
                held.append(HeldReplicas(region: instance.region, unit: instance.unit, count: 1))
            }
        }
        return held
    }
}
