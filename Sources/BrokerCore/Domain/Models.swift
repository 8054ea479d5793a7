import Foundation

// The broker's vocabulary as plain values. JSON field names are the API's (camelCase);
// parsing and validation of client input live in the *Spec/*Request parsers, not here.

public struct Region: Codable, Sendable, Equatable {
    public var id: String
    public var displayName: String?
    public var kind: RegionKind
    public var primary: Bool
    public var vpcId: String
    public var vSwitchIds: [String]
    public var securityGroupId: String
    public var labels: [String: String]
    public var state: RegionState
    public var createdAt: Date?
    public var updatedAt: Date?

    public init(
        id: String, displayName: String? = nil, kind: RegionKind = .serverless, primary: Bool = false,
        vpcId: String, vSwitchIds: [String], securityGroupId: String, labels: [String: String] = [:],
        state: RegionState = .active, createdAt: Date? = nil, updatedAt: Date? = nil
    ) {
        self.id = id
        self.displayName = displayName
        self.kind = kind
        self.primary = primary
        self.vpcId = vpcId
        self.vSwitchIds = vSwitchIds
        self.securityGroupId = securityGroupId
        self.labels = labels
        self.state = state
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// One instance shape in one region, as an admin reported it.
public struct Pool: Codable, Sendable, Equatable {
    public var id: String
    public var regionId: String
    public var computeClass: ComputeClass
    public var qos: [QoS]
    /// The accelerator's model (`T4`, `H100`, `Gaudi2`, `Inferentia2`): "GPU series".
    public var gpuSeries: String?
    /// Its vendor: given with the pool, or inferred from a model `AcceleratorModels` knows.
    public var gpuVendor: AcceleratorVendor?
    /// Memory per device.
    public var gpuMemoryGiB: Double?
    /// Devices per instance.
    public var gpusPerInstance: Int?
    /// Partitions a device can be cut into (MIG profiles such as `3g.40gb`), if any.
    public var gpuPartitions: [String]
    /// How the devices of an instance (or instances) are linked: `nvlink`, `efa`, `infiniband`...
    public var gpuInterconnect: [String]
    public var cpu: Double
    public var memoryGiB: Double
    public var instanceType: String
    public var capacity: Int
    public var pricePerHour: Double
    public var deferScaleInSeconds: Int

    public init(
        id: String, regionId: String, computeClass: ComputeClass, qos: [QoS] = QoS.allCases,
        gpuSeries: String? = nil, gpuVendor: AcceleratorVendor? = nil, gpuMemoryGiB: Double? = nil,
        gpusPerInstance: Int? = nil, gpuPartitions: [String] = [], gpuInterconnect: [String] = [],
        cpu: Double, memoryGiB: Double, instanceType: String, capacity: Int, pricePerHour: Double,
        deferScaleInSeconds: Int = 600
    ) {
        self.id = id
        self.regionId = regionId
        self.computeClass = computeClass
        self.qos = qos
        self.gpuSeries = gpuSeries
        self.gpuVendor = gpuVendor ?? gpuSeries.map { AcceleratorModels.vendor(of: $0) ?? .other }
        self.gpuMemoryGiB = gpuMemoryGiB
        self.gpusPerInstance = gpusPerInstance
        self.gpuPartitions = gpuPartitions
        self.gpuInterconnect = gpuInterconnect
        self.cpu = cpu
        self.memoryGiB = memoryGiB
        self.instanceType = instanceType
        self.capacity = capacity
        self.pricePerHour = pricePerHour
        self.deferScaleInSeconds = deferScaleInSeconds
    }
}

/// A pool with what is in use now. `allocated` counts instances holding capacity
/// (running and idle); idle instances are warm and reusable by the next grant.
public struct PoolUsage: Sendable, Equatable {
    public var pool: Pool
    public var allocated: Int
    public var idle: Int

    public init(pool: Pool, allocated: Int, idle: Int) {
        self.pool = pool
        self.allocated = allocated
        self.idle = idle
    }

    /// New instances the pool can still give. Capacity reported below use leaves it at 0.
    public var available: Int { max(0, pool.capacity - allocated) }
    /// Stock shrank below what is held: nothing is taken away, nothing new is granted.
    public var overcommitted: Bool { allocated > pool.capacity }
    /// Replicas a grant can get here: idle instances first, then new ones.
    public var grantable: Int { available + idle }
}

/// Which regions one step of a placement policy may use.
public struct RegionSelector: Codable, Sendable, Equatable {
    public var kind: RegionKind?
    public var labels: [String: String]

    public init(kind: RegionKind? = nil, labels: [String: String] = [:]) {
        self.kind = kind
        self.labels = labels
    }
}

/// One step of a placement policy: region ids (`*` = every region not named by an
/// earlier unit) and/or a selector, and an optional cap on replicas in this unit.
public struct PlacementUnit: Codable, Sendable, Equatable {
    public var regions: [String]?
    public var selector: RegionSelector?
    public var max: Int?
    /// `spread` only, on every unit or none: each of the unit's regions gets a share in
    /// proportion to this static weight instead of to what it can hold (Karmada's
    /// `staticWeightList`).
    public var weight: Int?

    public init(regions: [String]? = nil, selector: RegionSelector? = nil, max: Int? = nil, weight: Int? = nil) {
        self.regions = regions
        self.selector = selector
        self.max = max
        self.weight = weight
    }
}

public enum PlacementStrategy: String, Codable, Sendable, CaseIterable {
    case prefer
    case spread
    /// `prefer`, with the regions of each unit (all regions without units) ordered by
    /// the price of the pool that would serve the shape.
    case cheapest
}

public struct PlacementPolicy: Codable, Sendable, Equatable {
    public var strategy: PlacementStrategy
    public var units: [PlacementUnit]
    /// Per replica: no pool above it is used (with the request's own cap, the lower wins).
    public var maxPricePerHour: Double?
    /// A tenant's named policy may default `recover` for the requests it governs.
    public var recover: Bool?

    public init(
        strategy: PlacementStrategy = .prefer, units: [PlacementUnit] = [], maxPricePerHour: Double? = nil, recover: Bool? = nil
    ) {
        self.strategy = strategy
        self.units = units
        self.maxPricePerHour = maxPricePerHour
        self.recover = recover
    }
}

public enum Precision: String, Codable, Sendable, CaseIterable {
    case fp32, fp16, bf16, fp8, int8, int4

    public var bytesPerParameter: Double {
        switch self {
        case .fp32: 4
        case .fp16, .bf16: 2
        case .fp8, .int8: 1
        case .int4: 0.5
        }
    }
}

/// A model to size GPUs for, in place of a GPU series list.
public struct ModelSpec: Codable, Sendable, Equatable {
    public var parameters: Double
    public var precision: Precision
    public var contextLength: Int?
    public var layers: Int?
    public var hiddenSize: Int?
    public var batchSize: Int?
    public var kvCacheGiB: Double?
    public var usableFraction: Double?

    public init(
        parameters: Double, precision: Precision, contextLength: Int? = nil, layers: Int? = nil,
        hiddenSize: Int? = nil, batchSize: Int? = nil, kvCacheGiB: Double? = nil, usableFraction: Double? = nil
    ) {
        self.parameters = parameters
        self.precision = precision
        self.contextLength = contextLength
        self.layers = layers
        self.hiddenSize = hiddenSize
        self.batchSize = batchSize
        self.kvCacheGiB = kvCacheGiB
        self.usableFraction = usableFraction
    }
}

/// The shape of one replica: what every instance placed for it must at least offer.
public struct ComputeShape: Codable, Sendable, Equatable {
    public var computeClass: ComputeClass
    public var qos: QoS
    /// Acceptable series, most preferred first; empty for CPU classes or when `model` decides.
    public var gpuSeries: [String]
    public var gpuCount: Int
    /// Only this vendor's devices (a device plugin's resource name says whose).
    public var gpuVendor: AcceleratorVendor?
    /// Memory each device must have at least.
    public var minGPUMemoryGiB: Double?
    /// A link the pool must offer (`nvlink`, `efa`...).
    public var gpuInterconnect: String?
    /// A partition profile the pool's devices must offer (MIG `3g.40gb`).
    public var gpuPartition: String?
    public var cpu: Double
    public var memoryGiB: Double
    public var instanceType: String?
    /// GPU memory needed per replica (from `model` via the sizing rule); series then do not matter.
    public var requiredGPUMemoryGiB: Double?
    /// The highest price per hour of a pool that may serve a replica.
    public var maxPricePerHour: Double?

    public init(
        computeClass: ComputeClass, qos: QoS = .default, gpuSeries: [String] = [], gpuCount: Int = 0,
        gpuVendor: AcceleratorVendor? = nil, minGPUMemoryGiB: Double? = nil, gpuInterconnect: String? = nil,
        gpuPartition: String? = nil, cpu: Double, memoryGiB: Double, instanceType: String? = nil,
        requiredGPUMemoryGiB: Double? = nil, maxPricePerHour: Double? = nil
    ) {
        self.gpuVendor = gpuVendor
        self.minGPUMemoryGiB = minGPUMemoryGiB
        self.gpuInterconnect = gpuInterconnect
        self.gpuPartition = gpuPartition
        self.maxPricePerHour = maxPricePerHour
        self.computeClass = computeClass
        self.qos = qos
        self.gpuSeries = gpuSeries
        self.gpuCount = gpuCount
        self.cpu = cpu
        self.memoryGiB = memoryGiB
        self.instanceType = instanceType
        self.requiredGPUMemoryGiB = requiredGPUMemoryGiB
    }
}

/// A client's request for capacity, validated.
public struct AllocationRequest: Codable, Sendable, Equatable {
    public var shape: ComputeShape
    public var replicas: Int
    public var region: String?
    public var model: ModelSpec?
    public var placement: PlacementPolicy?
    public var allOrNothing: Bool
    public var leaseSeconds: Int
    public var queue: Bool
    public var queueTimeoutSeconds: Int
    public var labels: [String: String]
    /// Replicas lost to preemption, an interruption or a failed start are placed again
    /// (`Recovery`); nil: not asked (false).
    public var recover: Bool?

    public init(
        shape: ComputeShape, replicas: Int, region: String? = nil, model: ModelSpec? = nil,
        placement: PlacementPolicy? = nil, allOrNothing: Bool = true, leaseSeconds: Int = 300,
        queue: Bool = false, queueTimeoutSeconds: Int = 3600, labels: [String: String] = [:], recover: Bool? = nil
    ) {
        self.shape = shape
        self.replicas = replicas
        self.region = region
        self.model = model
        self.placement = placement
        self.allOrNothing = allOrNothing
        self.leaseSeconds = leaseSeconds
        self.queue = queue
        self.queueTimeoutSeconds = queueTimeoutSeconds
        self.labels = labels
        self.recover = recover
    }

    /// Whether lost replicas are placed again: the request says so, else its placement
    /// (a named policy's default), else not.
    public var recovers: Bool { recover ?? placement?.recover ?? false }
}

/// One line of an allocation's `decisions`: a region considered and why it was used or skipped.
public struct PlacementDecision: Codable, Sendable, Equatable {
    public var region: String
    public var replicas: Int
    public var reason: String

    public init(region: String, replicas: Int, reason: String) {
        self.region = region
        self.replicas = replicas
        self.reason = reason
    }

    /// Why a pending allocation over its tenant's monthly budget still waits, in every
    /// place that queues or keeps it pending for that reason.
    public static func waitingForBudget(_ detail: String) -> PlacementDecision {
        PlacementDecision(region: "*", replicas: 0, reason: "waiting for budget: \(detail)")
    }

    /// A grant that preempted instances with notice waits for them to stop.
    public static func awaitingPreemption(_ victims: Int, until deadline: Date) -> PlacementDecision {
        PlacementDecision(
            region: "*", replicas: 0,
            reason: "waiting for \(victims) preempted instance\(victims == 1 ? "" : "s") to stop at \(deadline.formatted(.iso8601))")
    }
}
