import Foundation

// The placement planner: pure functions from (request shape, policy, inventory) to a plan.
// No I/O; the store turns a plan into reservations under its own locks.

/// One region with its pools and their current use.
public struct RegionInventory: Sendable, Equatable {
    public var region: Region
    public var pools: [PoolUsage]

    public init(region: Region, pools: [PoolUsage]) {
        self.region = region
        self.pools = pools
    }
}

/// Replicas an allocation already holds, for scale-out (unit max counts them) and for spreading.
public struct HeldReplicas: Sendable, Equatable {
    public var region: String
    public var unit: Int?
    public var count: Int

    public init(region: String, unit: Int? = nil, count: Int) {
        self.region = region
        self.unit = unit
        self.count = count
    }
}

public struct PlacementInput: Sendable {
    public var shape: ComputeShape
    /// How many NEW replicas to place now.
    public var replicas: Int
    /// `request.region`: only this region, never a fallback. Overrides `policy`.
    public var pinnedRegion: String?
    /// `request.placement`, else the tenant's matching named policy, else nil = default policy.
    public var policy: PlacementPolicy?
    public var allOrNothing: Bool
    /// `[]` for a new allocation.
    public var held: [HeldReplicas]
    /// Every region (any state) with its pools and usage.
    public var inventory: [RegionInventory]
    /// `inventory`'s index, when it comes from an `Inventory`: the plan then reads only the
    /// pools of regions that have the shape's pools. Nil: every region's pools are read.
    public var index: InventoryIndex?

    public init(
        shape: ComputeShape, replicas: Int, pinnedRegion: String? = nil, policy: PlacementPolicy? = nil,
        allOrNothing: Bool = true, held: [HeldReplicas] = [], inventory: [RegionInventory]
    ) {
        self.shape = shape
        self.replicas = replicas
        self.pinnedRegion = pinnedRegion
        self.policy = policy
        self.allOrNothing = allOrNothing
        self.held = held
        self.inventory = inventory
    }

    public init(
        shape: ComputeShape, replicas: Int, pinnedRegion: String? = nil, policy: PlacementPolicy? = nil,
        allOrNothing: Bool = true, held: [HeldReplicas] = [], inventory: Inventory
    ) {
        self.init(
            shape: shape, replicas: replicas, pinnedRegion: pinnedRegion, policy: policy, allOrNothing: allOrNothing,
            held: held, inventory: inventory.regions)
        self.index = inventory.index
    }
}

public struct PlannedPlacement: Sendable, Equatable {
    public var region: String
    public var poolId: String
    public var count: Int
    /// The policy unit (0-based) that placed these; nil for the default policy or a pinned region.
    public var unit: Int?

    public init(region: String, poolId: String, count: Int, unit: Int? = nil) {
        self.region = region
        self.poolId = poolId
        self.count = count
        self.unit = unit
    }
}

public struct PlacementPlan: Sendable, Equatable {
    /// In placement order; counts > 0.
    public var placements: [PlannedPlacement]
    /// One per region considered, in the order considered.
    public var decisions: [PlacementDecision]
    public var placed: Int
    /// `placed == replicas` (a non-positive request is trivially satisfied with nothing placed).
    public var satisfied: Bool

    public init(placements: [PlannedPlacement], decisions: [PlacementDecision], placed: Int, satisfied: Bool) {
        self.placements = placements
        self.decisions = decisions
        self.placed = placed
        self.satisfied = satisfied
    }
}
