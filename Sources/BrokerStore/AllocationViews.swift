import BrokerCore
import Foundation
import JSON
import JSON
import PostgresClient

/// One replica as the client sees it, with the labels to put on its pod.
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
}

enum AllocationRows {
    static let allocationColumns = """
        a.id, a.seq, a.status, a.replicas, a.placed_replicas, a.labels::text AS labels,
        a.decisions::text AS decisions, a.lease_seconds, a.lease_expires_at, a.queue_deadline,
        a.created_at, a.updated_at, a.request::text AS request
        """

    static let instanceColumns = """
        i.seq, i.id, i.allocation_id, i.region_id, i.pool_id, i.instance_type, i.gpu_series, i.gpu_count,
        i.cpu, i.memory_gib, i.vpc_id, i.vswitch_id, i.security_group_id, i.unit, i.state, i.reused,
        i.created_at
        """

    static func allocation(_ row: PostgresRow, instances: [InstanceView]) throws -> AllocationView {
        AllocationView(
            id: try row.decode("id"),
            status: try enumValue(row, "status"),
            replicas: try row.decode("replicas"),
            placedReplicas: try row.decode("placed_replicas"),
            instances: instances,
            leaseSeconds: try row.decode("lease_seconds"),
            leaseExpiresAt: try row.decodeIfPresent("lease_expires_at"),
            queueDeadline: try row.decodeIfPresent("queue_deadline"),
            createdAt: try row.decode("created_at"),
            updatedAt: try row.decode("updated_at"),
            labels: try row.decodeJSON("labels"),
            decisions: try row.decodeJSON("decisions"),
            request: try row.decodeJSON("request")
        )
    }

    static func instance(_ row: PostgresRow) throws -> InstanceView {
        let region: String = try row.decode("region_id")
        let instanceType: String = try row.decode("instance_type")
        let allocationId: ResourceID = try row.decode("allocation_id")
        let unit: Int? = try row.decodeIfPresent("unit")
        var labels = [
            "topology.kubernetes.io/region": region,
            "node.kubernetes.io/instance-type": instanceType,
            "gpubroker.io/allocation-id": allocationId.description,
        ]
        if let unit { labels["gpubroker.io/unit"] = String(unit) }
        return InstanceView(
            id: try row.decode("id"),
            region: region,
            poolId: try row.decode("pool_id"),
            instanceType: instanceType,
            gpuSeries: try row.decodeIfPresent("gpu_series"),
            gpuCount: try row.decode("gpu_count"),
            cpu: try row.decode("cpu"),
            memoryGiB: try row.decode("memory_gib"),
            vpcId: try row.decode("vpc_id"),
            vSwitchId: try row.decode("vswitch_id"),
            securityGroupId: try row.decode("security_group_id"),
            unit: unit,
            state: try enumValue(row, "state"),
            reused: try row.decode("reused"),
            createdAt: try row.decode("created_at"),
            labels: labels
        )
    }
}

extension ResourceID: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.value(description)
    }
}

extension InstanceView: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("cpu", cpu)
        json.member("createdAt", createdAt)
        json.member("gpuCount", gpuCount)
        json.member("gpuSeries", gpuSeries)
        json.member("id", id)
        json.member("instanceType", instanceType)
        json.member("labels", labels)
        json.member("memoryGiB", memoryGiB)
        json.member("poolId", poolId)
        json.member("region", region)
        json.member("reused", reused)
        json.member("securityGroupId", securityGroupId)
        json.member("state", state)
        json.member("unit", unit)
        json.member("vSwitchId", vSwitchId)
        json.member("vpcId", vpcId)
        json.endObject()
    }
}

extension AllocationView: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("createdAt", createdAt)
        json.member("decisions", decisions)
        json.member("id", id)
        json.member("instances", instances)
        json.member("labels", labels)
        json.member("leaseExpiresAt", leaseExpiresAt)
        json.member("leaseSeconds", leaseSeconds)
        json.member("placedReplicas", placedReplicas)
        json.member("queueDeadline", queueDeadline)
        json.member("replicas", replicas)
        json.member("request", request)
        json.member("status", status)
        json.member("updatedAt", updatedAt)
        json.endObject()
    }
}
