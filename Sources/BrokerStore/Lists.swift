import BrokerCore
import Foundation
import PostgresClient

/// One page of a list and the cursor of the next (nil on the last page). Every list is
/// read through an index that matches its filters and order (migration 5), with the
/// cursor as the index's lower bound, so a page costs the same however long the list.
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var nextCursor: String?

    /// `rows` were read with `limit + 1`: the extra row only says that more follow.
    static func of(_ rows: PostgresResult, limit: Int, cursor: (PostgresRow) throws -> String, item: ([PostgresRow]) throws -> [Item]) throws -> Page {
        let page = Array(rows.prefix(limit))
        return Page(items: try item(page), nextCursor: rows.count > limit ? try cursor(page[page.count - 1]) : nil)
    }
}

extension AllocationStore {
    /// The tenant's allocations, newest first. The cursor is the last sequence number
    /// seen, so pages stay stable while new allocations arrive. With `region`, the
    /// allocations that ever had an instance there (`allocation_regions`).
    public func list(
        tenantId: UUID, limit: Int, before cursor: Int64?, status: AllocationStatus?, region: String?
    ) async throws -> Page<AllocationView> {
        // One statement per combination of filters: each has its own plan on its own index.
        let sql: String
        var binds: [any PostgresEncodable] = [tenantId, cursor ?? Int64.max, limit + 1]
        if let region {
            binds.append(region)
            sql = """
                SELECT \(AllocationRows.allocationColumns) FROM allocation_regions ar
                JOIN allocations a ON a.id = ar.allocation_id
                WHERE ar.tenant_id = $1 AND ar.region_id = $4 AND ar.allocation_seq < $2
                  AND ($5::text IS NULL OR a.status = $5)
                ORDER BY ar.allocation_seq DESC LIMIT $3
                """
            binds.append(status?.rawValue)
        } else if let status {
            binds.append(status.rawValue)
            sql = """
                SELECT \(AllocationRows.allocationColumns) FROM allocations a
                WHERE a.tenant_id = $1 AND a.status = $4 AND a.seq < $2 ORDER BY a.seq DESC LIMIT $3
                """
        } else {
            sql = """
                SELECT \(AllocationRows.allocationColumns) FROM allocations a
                WHERE a.tenant_id = $1 AND a.seq < $2 ORDER BY a.seq DESC LIMIT $3
                """
        }
        let arguments = binds
        return try await StoreError.translating {
            try await pool.withConnection { c in
                try Page.of(
                    try c.query(sql, arguments), limit: limit, cursor: { String(try $0.decode("seq") as Int64) },
                    item: { page in
                        let ids = try page.map { row -> String in (try row.decode("id") as UUID).uuidString }
                        let instances = try Self.instances(c, allocationIds: ids)
                        return try page.map { row in
                            try AllocationRows.allocation(row, instances: instances[try row.decode("id"), default: []])
                        }
                    })
            }
        }
    }
}

extension TenantStore {
    /// Tenants, newest first; the cursor is the id of the last one seen.
    public func list(limit: Int, after cursor: UUID?) async throws -> Page<Tenant> {
        let after = cursor == nil ? "" : "WHERE (created_at, id) < (SELECT created_at, id FROM tenants WHERE id = $2)"
        return try await StoreError.translating {
            try await pool.withConnection { c in
                try Page.of(
                    try c.query(
                        "SELECT \(Self.columns) FROM tenants \(after) ORDER BY created_at DESC, id DESC LIMIT $1",
                        cursor.map { [limit + 1, $0] } ?? [limit + 1]),
                    limit: limit, cursor: { (try $0.decode("id") as UUID).lowercased },
                    item: { try $0.map(Self.decode) })
            }
        }
    }
}

extension InventoryStore {
    /// Regions in id order (a catalogue of places, read through its primary key); the
    /// cursor is the id of the last one seen.
    public func regions(limit: Int, after cursor: String?) async throws -> Page<Region> {
        try await StoreError.translating {
            try await pool.withConnection { c in
                try Page.of(
                    try c.query(
                        "SELECT \(RegionColumns.list) FROM regions r WHERE r.id > $1 ORDER BY r.id LIMIT $2",
                        [cursor ?? "", limit + 1]),
                    limit: limit, cursor: { try $0.decode("region_id") }, item: { try $0.map(RegionColumns.decode) })
            }
        }
    }
}
