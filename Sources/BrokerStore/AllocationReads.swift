import BrokerCore
import Foundation
import PostgresClient

// An allocation and its instances, pages of allocations, and an allocation's ledger rows.
extension AllocationStore {
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
                    SELECT seq, at, kind, region_id, pool_id, instance_id, delta,
                           CASE WHEN kind = 'preempted' THEN 'preemption' ELSE actor END AS actor
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

    @discardableResult
    static func requireOwned(_ c: PostgresConnection, id: UUID, tenantId: UUID) throws -> AllocationStatus {
        let rows = try c.query("SELECT status FROM allocations WHERE id = $1 AND tenant_id = $2", [id, tenantId])
        guard let row = rows.first else { throw StoreError.notFound("allocation \(id.lowercased) not found") }
        return try enumValue(row, "status")
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
