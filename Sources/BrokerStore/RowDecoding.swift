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
        p.allocated, p.idle, p.price_per_hour, p.defer_scale_in_seconds
        """

    static func decode(_ row: PostgresRow) throws -> PoolUsage {
        let qos: [String] = try row.decode("qos")
        let pool = Pool(
            id: try row.decode("pool_id"),
            regionId: try row.decode("pool_region_id"),
            computeClass: try enumValue(row, "compute_class"),
            qos: qos.compactMap(QoS.init(rawValue:)),
            gpuSeries: try row.decodeIfPresent("gpu_series"),
            gpuMemoryGiB: try row.decodeIfPresent("gpu_memory_gib"),
            gpusPerInstance: try row.decodeIfPresent("gpus_per_instance"),
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
