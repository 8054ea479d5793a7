import Foundation

// What the API answers about allocations: the store builds these from its rows.

/// One replica as the client sees it, with the labels to put on its pod (`podLabels`).
public struct InstanceView: Codable, Sendable, Equatable {
    public var id: ResourceID
    public var region: String
    public var poolId: String
    public var instanceType: String
    public var gpuSeries: String?
    public var gpuCount: Int
    public var cpu: Double
    public var memoryGiB: Double
    public var vpcId: String
    public var vSwitchId: String
    public var securityGroupId: String
    public var unit: Int?
    public var state: InstanceState
    public var reused: Bool
    public var createdAt: Date
    public var labels: [String: String]

    public init(
        id: ResourceID, region: String, poolId: String, instanceType: String, gpuSeries: String?,
        gpuCount: Int, cpu: Double, memoryGiB: Double, vpcId: String, vSwitchId: String,
        securityGroupId: String, unit: Int?, state: InstanceState, reused: Bool, createdAt: Date,
        labels: [String: String]
    ) {
        self.id = id
        self.region = region
        self.poolId = poolId
        self.instanceType = instanceType
        self.gpuSeries = gpuSeries
        self.gpuCount = gpuCount
        self.cpu = cpu
        self.memoryGiB = memoryGiB
        self.vpcId = vpcId
        self.vSwitchId = vSwitchId
        self.securityGroupId = securityGroupId
        self.unit = unit
        self.state = state
        self.reused = reused
        self.createdAt = createdAt
        self.labels = labels
    }
}

extension InstanceView {
    /// The labels to put on the pod of an instance: its region and instance type as
    /// Kubernetes names them, and the allocation (and unit) it belongs to.
    public static func podLabels(
        region: String, instanceType: String, allocationId: ResourceID, unit: Int?
    ) -> [String: String] {
        var labels = [
            "topology.kubernetes.io/region": region,
            "node.kubernetes.io/instance-type": instanceType,
            "gpubroker.io/allocation-id": allocationId.description,
        ]
        if let unit { labels["gpubroker.io/unit"] = String(unit) }
        return labels
    }
}

public struct AllocationView: Codable, Sendable, Equatable {
    public var id: ResourceID
    public var status: AllocationStatus
    public var replicas: Int
    public var placedReplicas: Int
    public var instances: [InstanceView]
    public var leaseSeconds: Int
    public var leaseExpiresAt: Date?
    public var queueDeadline: Date?
    public var createdAt: Date
    public var updatedAt: Date
    public var labels: [String: String]
    public var decisions: [PlacementDecision]
    /// The request as the broker understood it (defaults filled in, policy resolved).
    public var request: AllocationRequest
    /// The owning tenant, in the admin's answers only (a tenant knows its own).
    public var tenantId: ResourceID?
    /// In the answer that queued a request for capacity only: what would fit now instead
    /// (`QueueAlternatives`).
    public var alternatives: [QueueAlternative]?

    public init(
        id: ResourceID, status: AllocationStatus, replicas: Int, placedReplicas: Int,
        instances: [InstanceView], leaseSeconds: Int, leaseExpiresAt: Date?, queueDeadline: Date?,
        createdAt: Date, updatedAt: Date, labels: [String: String], decisions: [PlacementDecision],
        request: AllocationRequest
    ) {
        self.id = id
        self.status = status
        self.replicas = replicas
        self.placedReplicas = placedReplicas
        self.instances = instances
        self.leaseSeconds = leaseSeconds
        self.leaseExpiresAt = leaseExpiresAt
        self.queueDeadline = queueDeadline
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.labels = labels
        self.decisions = decisions
        self.request = request
    }
}

public struct LedgerEvent: Codable, Sendable, Equatable {
    public var seq: Int64
    public var at: Date
    public var kind: String
    public var region: String?
    public var poolId: String?
    public var instanceId: ResourceID?
    public var delta: Int
    public var actor: String

    public init(
        seq: Int64, at: Date, kind: String, region: String?, poolId: String?, instanceId: ResourceID?,
        delta: Int, actor: String
    ) {
        self.seq = seq
        self.at = at
        self.kind = kind
        self.region = region
        self.poolId = poolId
        self.instanceId = instanceId
        self.delta = delta
        self.actor = actor
    }
}
