import BrokerCore
import Foundation
import PostgresClient
import Synchronization

/// Regions and their pools: what admins report and what placement reads.
public struct InventoryStore: Sendable {
    let pool: PostgresPool

    let snapshots: InventorySnapshots

    /// `snapshotSeconds`: how long `recentInventory()` reuses one snapshot (0 = always read).
    public init(pool: PostgresPool, snapshotSeconds: Double = 0.05) {
        self.pool = pool
        self.snapshots = InventorySnapshots(maxAge: .milliseconds(Int64(snapshotSeconds * 1000)))
    }

    // Region writes are rare and must keep "exactly one primary" across concurrent
    // admins: they serialise on one transaction-scoped advisory lock.
    private static let regionWriteLock: Int64 = 0x6770_6272_6567_696f

    public func createRegion(_ region: Region) async throws -> Region {
        try await write { c in
            try c.query("SELECT pg_advisory_xact_lock($1)", [Self.regionWriteLock])
            let exists = try c.query("SELECT 1 FROM regions WHERE id = $1", [region.id])
            if !exists.isEmpty { throw StoreError.conflict("region '\(region.id)' already exists") }
            let hasPrimary = !(try c.query("SELECT 1 FROM regions WHERE is_primary")).isEmpty
            let primary = region.primary || !hasPrimary
            if primary { try c.query("UPDATE regions SET is_primary = false, updated_at = now() WHERE is_primary") }
            try c.query(
                """
                INSERT INTO regions (id, display_name, kind, is_primary, vpc_id, vswitch_ids,
                                     security_group_id, labels, state)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9)
                """,
                [region.id, region.displayName, region.kind.rawValue, primary, region.vpcId,
                 region.vSwitchIds, region.securityGroupId, try PostgresJSON(region.labels), region.state.rawValue])
            return try Self.region(c, id: region.id)!
        }
    }

    /// Replaces a region's settable fields. Promoting demotes the previous primary in
    /// the same transaction; demoting the primary is refused while it is the primary.
    public func replaceRegion(_ region: Region) async throws -> Region {
        try await write { c in
            try c.query("SELECT pg_advisory_xact_lock($1)", [Self.regionWriteLock])
            guard let current = try Self.region(c, id: region.id) else {
                throw StoreError.notFound("region '\(region.id)' not found")
            }
            if current.primary && !region.primary {
                throw StoreError.conflict(
                    "region '\(region.id)' is the primary region: promote another region instead of demoting it")
            }
            if region.primary && !current.primary {
                try c.query("UPDATE regions SET is_primary = false, updated_at = now() WHERE is_primary")
            }
            try c.query(
                """
                UPDATE regions SET display_name = $2, kind = $3, is_primary = $4, vpc_id = $5,
                       vswitch_ids = $6, security_group_id = $7, labels = $8::jsonb, state = $9,
                       updated_at = now()
                WHERE id = $1
                """,
                [region.id, region.displayName, region.kind.rawValue, region.primary, region.vpcId,
                 region.vSwitchIds, region.securityGroupId, try PostgresJSON(region.labels), region.state.rawValue])
            return try Self.region(c, id: region.id)!
        }
    }

    public func deleteRegion(id: String) async throws {
        try await write { c in
            try c.query("SELECT pg_advisory_xact_lock($1)", [Self.regionWriteLock])
            guard let region = try Self.region(c, id: id) else {
                throw StoreError.notFound("region '\(id)' not found")
            }
            // Lock the region's pools so no grant lands between the check and the delete.
            let held = try c.query(
                "SELECT coalesce(sum(allocated), 0)::int AS held FROM (SELECT allocated FROM pools WHERE region_id = $1 FOR UPDATE) p",
                [id])
            let live: Int = try held[0].decode("held")
            if live > 0 {
                throw StoreError.conflict("region '\(id)' holds \(live) live instances: release them first")
            }
            if region.primary {
                let others = try c.query("SELECT 1 FROM regions WHERE id <> $1 LIMIT 1", [id])
                if !others.isEmpty {
                    throw StoreError.conflict(
                        "region '\(id)' is the primary region: promote another region before deleting it")
                }
            }
            try c.query("DELETE FROM pools WHERE region_id = $1", [id])
            try c.query("DELETE FROM regions WHERE id = $1", [id])
        }
    }

    public func regions() async throws -> [Region] {
        try await StoreError.translating {
            try await pool.withConnection { c in
                try c.query("SELECT \(RegionColumns.list) FROM regions r ORDER BY r.id").map(RegionColumns.decode)
            }
        }
    }

    public func region(id: String) async throws -> Region {
        try await StoreError.translating {
            try await pool.withConnection { c in
                guard let region = try Self.region(c, id: id) else {
                    throw StoreError.notFound("region '\(id)' not found")
                }
                return region
            }
        }
    }

    /// Creates or replaces a pool. Returns whether it was created. Lowering capacity
    /// below what is held takes nothing away: grants check against it.
    public func putPool(_ spec: Pool) async throws -> (pool: PoolUsage, created: Bool) {
        try await write { c in
            guard try Self.region(c, id: spec.regionId) != nil else {
                throw StoreError.notFound("region '\(spec.regionId)' not found")
            }
            let rows = try c.query(
                """
                INSERT INTO pools AS p (region_id, id, compute_class, qos, gpu_series, gpu_memory_gib,
                    gpus_per_instance, cpu, memory_gib, instance_type, capacity, price_per_hour,
                    defer_scale_in_seconds, gpu_vendor, gpu_partitions, gpu_interconnect)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                ON CONFLICT (region_id, id) DO UPDATE SET
                    compute_class = excluded.compute_class, qos = excluded.qos,
                    gpu_series = excluded.gpu_series, gpu_vendor = excluded.gpu_vendor,
                    gpu_partitions = excluded.gpu_partitions, gpu_interconnect = excluded.gpu_interconnect,
                    gpu_memory_gib = excluded.gpu_memory_gib,
                    gpus_per_instance = excluded.gpus_per_instance, cpu = excluded.cpu,
                    memory_gib = excluded.memory_gib, instance_type = excluded.instance_type,
                    capacity = excluded.capacity, price_per_hour = excluded.price_per_hour,
                    defer_scale_in_seconds = excluded.defer_scale_in_seconds, updated_at = now()
                RETURNING (xmax = 0) AS created, \(PoolColumns.list)
                """,
                [spec.regionId, spec.id, spec.computeClass.rawValue, spec.qos.map(\.rawValue), spec.gpuSeries,
                 spec.gpuMemoryGiB, spec.gpusPerInstance, spec.cpu, spec.memoryGiB, spec.instanceType,
                 spec.capacity, spec.pricePerHour, spec.deferScaleInSeconds, spec.gpuVendor?.rawValue,
                 spec.gpuPartitions, spec.gpuInterconnect])
            return (try PoolColumns.decode(rows[0]), try rows[0].decode("created"))
        }
    }

    public func deletePool(regionId: String, poolId: String) async throws {
        try await write { c in
            let rows = try c.query(
                "SELECT allocated FROM pools WHERE region_id = $1 AND id = $2 FOR UPDATE", [regionId, poolId])
            guard let row = rows.first else {
                throw StoreError.notFound("pool '\(poolId)' not found in region '\(regionId)'")
            }
            let held: Int = try row.decode("allocated")
            if held > 0 {
                throw StoreError.conflict("pool '\(poolId)' holds \(held) live instances: release them first")
            }
            try c.query("DELETE FROM pools WHERE region_id = $1 AND id = $2", [regionId, poolId])
        }
    }

    public func inventory(regionId: String) async throws -> RegionInventory {
        try await StoreError.translating {
            try await pool.withConnection { c in
                guard let found = try Self.snapshot(c, regionId: regionId).first else {
                    throw StoreError.notFound("region '\(regionId)' not found")
                }
                return found
            }
        }
    }

    /// Every region with its pools and their use now.
    public func inventory() async throws -> [RegionInventory] {
        try await StoreError.translating {
            try await pool.withConnection { c in try Self.snapshot(c) }
        }
    }

    /// Like `inventory()`, but from a snapshot up to `snapshotSeconds` old: for the
    /// availability query, which many clients poll and which is a forecast anyway (a
    /// grant checks capacity in the database). Region and pool changes made through
    /// this store show at once.
    public func recentInventory() async throws -> InventorySnapshot {
        try await StoreError.translating { try await snapshots.current(pool) }
    }

    /// Region and pool changes: one transaction, after which this store's snapshot is
    /// read afresh, so an admin sees their own report in the next availability query.
    private func write<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        defer { snapshots.invalidate() }
        return try await StoreError.translating { try await pool.withTransaction(body) }
    }

    static func region(_ c: PostgresConnection, id: String) throws -> Region? {
        try c.query("SELECT \(RegionColumns.list) FROM regions r WHERE r.id = $1", [id]).first.map(RegionColumns.decode)
    }

    /// One round trip: regions left-joined with their pools, in id order. With `shape`, only
    /// the pools of its class, GPU series and instance type (`InventoryIndex`'s keys): a plan
    /// for the shape reads no other, and each region is there for its decision.
    static func snapshot(
        _ c: PostgresConnection, regionId: String? = nil, fitting shape: ComputeShape? = nil
    ) throws -> [RegionInventory] {
        let rows = try c.query(
            """
            SELECT \(RegionColumns.list), \(PoolColumns.list)
            FROM regions r LEFT JOIN pools p ON p.region_id = r.id
                AND ($2::text IS NULL OR p.compute_class = $2)
                AND ($3::text[] IS NULL OR p.gpu_series = ANY ($3))
                AND ($4::text IS NULL OR p.instance_type = $4)
            WHERE $1::text IS NULL OR r.id = $1
            ORDER BY r.id, p.id
            """,
            [regionId, shape?.computeClass.rawValue, shape.flatMap { $0.gpuSeries.isEmpty ? nil : $0.gpuSeries },
             shape?.instanceType])
        var result: [RegionInventory] = []
        for row in rows {
            let regionId: String = try row.decode("region_id")
            if result.last?.region.id != regionId {
                result.append(RegionInventory(region: try RegionColumns.decode(row), pools: []))
            }
            if !row.isNull("pool_id") {
                result[result.count - 1].pools.append(try PoolColumns.decode(row))
            }
        }
        return result
    }
}
