import BrokerCore
import Foundation
import PostgresClient

// Column lists and row decoders shared by every query that returns regions or pools,
// so that one shape of SQL maps to one shape of value.

enum RegionColumns {
    static let list = """
        r.id AS region_id, r.display_name, r.kind, r.is_primary, r.vpc_id, r.vswitch_ids,
        r.security_group_id, r.labels::text AS region_labels, r.state AS region_state,
        r.created_at AS region_created_at, r.updated_at AS region_updated_at
        """

    static func decode(_ row: PostgresRow) throws -> Region {
        Region(
            id: try row.decode("region_id"),
            displayName: try row.decodeIfPresent("display_name"),
            kind: try enumValue(row, "kind"),
            primary: try row.decode("is_primary"),
            vpcId: try row.decode("vpc_id"),
            vSwitchIds: try row.decode("vswitch_ids"),
            securityGroupId: try row.decode("security_group_id"),
            labels: try row.decodeJSON("region_labels"),
            state: try enumValue(row, "region_state"),
            createdAt: try row.decode("region_created_at"),
            updatedAt: try row.decode("region_updated_at")
        )
    }
}

enum PoolColumns {
    static let list = """
        p.region_id AS pool_region_id, p.id AS pool_id, p.compute_class, p.qos, p.gpu_series,
        p.gpu_memory_gib, p.gpus_per_instance, p.cpu, p.memory_gib, p.instance_type, p.capacity,
        p.allocated, p.idle, p.price_per_hour, p.defer_scale_in_seconds, p.gpu_vendor, p.gpu_partitions,
        p.gpu_interconnect
        """

    static func decode(_ row: PostgresRow) throws -> PoolUsage {
        let qos: [String] = try row.decode("qos")
        let pool = Pool(
            id: try row.decode("pool_id"),
            regionId: try row.decode("pool_region_id"),
            computeClass: try enumValue(row, "compute_class"),
            qos: qos.compactMap(QoS.init(rawValue:)),
            gpuSeries: try row.decodeIfPresent("gpu_series"),
            gpuVendor: try (row.decodeIfPresent("gpu_vendor") as String?) == nil ? nil : enumValue(row, "gpu_vendor"),
            gpuMemoryGiB: try row.decodeIfPresent("gpu_memory_gib"),
            gpusPerInstance: try row.decodeIfPresent("gpus_per_instance"),
            gpuPartitions: try row.decode("gpu_partitions"),
            gpuInterconnect: try row.decode("gpu_interconnect"),
            cpu: try row.decode("cpu"),
            memoryGiB: try row.decode("memory_gib"),
            instanceType: try row.decode("instance_type"),
            capacity: try row.decode("capacity"),
            pricePerHour: try row.decode("price_per_hour"),
            deferScaleInSeconds: try row.decode("defer_scale_in_seconds")
        )
        return PoolUsage(pool: pool, allocated: try row.decode("allocated"), idle: try row.decode("idle"))
    }
}

struct UnknownEnumValue: Error, CustomStringConvertible {
    var column: String
    var value: String
    var description: String { "unexpected value '\(value)' in column \(column)" }
}

func enumValue<T: RawRepresentable>(_ row: PostgresRow, _ column: String) throws -> T where T.RawValue == String {
    let raw: String = try row.decode(column)
    guard let value = T(rawValue: raw) else { throw UnknownEnumValue(column: column, value: raw) }
    return value
}

enum AllocationRows {
    static let allocationColumns = """
        a.id, a.seq, a.status, a.replicas, a.placed_replicas, a.labels::text AS labels,
        a.decisions::text AS decisions, a.lease_seconds, a.lease_expires_at, a.queue_deadline,
        a.created_at, a.updated_at, a.request::text AS request, a.tenant_id
        """

    private static let instanceFields = [
        "seq", "id", "allocation_id", "region_id", "pool_id", "instance_type", "gpu_series", "gpu_count",
        "cpu", "memory_gib", "vpc_id", "vswitch_id", "security_group_id", "unit", "state", "reused", "created_at",
    ]
    static let instanceColumns = instanceFields.map { "i.\($0)" }.joined(separator: ", ")
    /// The instance columns named `i_<column>`, beside `allocationColumns` in one row.
    static let prefixedInstanceColumns = instanceFields.map { "i.\($0) AS i_\($0)" }.joined(separator: ", ")

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

    /// An instance's state in its allocation's view: an idle instance is one the allocation
    /// let go of (its pool keeps it warm for any grant), so the allocation shows it released.
    static func shownState(_ state: InstanceState) -> InstanceState {
        state == .idle ? .released : state
    }

    /// An instance from `instanceColumns`, or with `prefix` "i_" from `prefixedInstanceColumns`.
    static func instance(_ row: PostgresRow, prefix: String = "") throws -> InstanceView {
        let region: String = try row.decode(prefix + "region_id")
        let instanceType: String = try row.decode(prefix + "instance_type")
        let allocationId: ResourceID = try row.decode(prefix + "allocation_id")
        let unit: Int? = try row.decodeIfPresent(prefix + "unit")
        return InstanceView(
            id: try row.decode(prefix + "id"),
            region: region,
            poolId: try row.decode(prefix + "pool_id"),
            instanceType: instanceType,
            gpuSeries: try row.decodeIfPresent(prefix + "gpu_series"),
            gpuCount: try row.decode(prefix + "gpu_count"),
            cpu: try row.decode(prefix + "cpu"),
            memoryGiB: try row.decode(prefix + "memory_gib"),
            vpcId: try row.decode(prefix + "vpc_id"),
            vSwitchId: try row.decode(prefix + "vswitch_id"),
            securityGroupId: try row.decode(prefix + "security_group_id"),
            unit: unit,
            state: shownState(try enumValue(row, prefix + "state")),
            reused: try row.decode(prefix + "reused"),
            createdAt: try row.decode(prefix + "created_at"),
            labels: InstanceView.podLabels(region: region, instanceType: instanceType, allocationId: allocationId, unit: unit)
        )
    }
}

extension ResourceID: PostgresEncodable, PostgresDecodable {
    public var postgresText: String? { description }

    public init(postgresText: String) throws {
        self.init(try UUID(postgresText: postgresText))
    }
}
