import BrokerCore
import Foundation
import PostgresClient

// An allocation and its instances, pages of allocations (`Page`, Lists.swift), and an
// allocation's ledger rows.
extension AllocationStore {
    public func get(tenantId: UUID, id: UUID) async throws -> AllocationView {
        try await StoreError.translating {
            try await pool.withConnection { c in try Self.load(c, id: id, tenantId: tenantId) }
        }
    }

    /// The tenant's allocations (every tenant's when `tenantId` is nil), newest first; the
    /// admin's list names each one's tenant (`namingTenants`). The cursor is the last sequence number
    /// seen, so pages stay stable while new allocations arrive. With `region`, the
    /// allocations that ever had an instance there (`allocation_regions`).
    public func list(
        tenantId: UUID?, limit: Int, before cursor: Int64?, status: AllocationStatus?, region: String?,
        namingTenants: Bool = false
    ) async throws -> Page<AllocationView> {
        // One statement per combination of filters: each has its own plan on its own index.
        let sql: String
        var binds: [any PostgresEncodable] = [tenantId, cursor ?? Int64.max, limit + 1]
        if let region {
            binds.append(region)
            sql = """
                SELECT \(AllocationRows.allocationColumns) FROM allocation_regions ar
                JOIN allocations a ON a.id = ar.allocation_id
                WHERE ($1::uuid IS NULL OR ar.tenant_id = $1) AND ar.region_id = $4 AND ar.allocation_seq < $2
                  AND ($5::text IS NULL OR a.status = $5)
                ORDER BY ar.allocation_seq DESC LIMIT $3
                """
            binds.append(status?.rawValue)
        } else if let status {
            binds.append(status.rawValue)
            sql = """
                SELECT \(AllocationRows.allocationColumns) FROM allocations a
                WHERE ($1::uuid IS NULL OR a.tenant_id = $1) AND a.status = $4 AND a.seq < $2 ORDER BY a.seq DESC LIMIT $3
                """
        } else {
            sql = """
                SELECT \(AllocationRows.allocationColumns) FROM allocations a
                WHERE ($1::uuid IS NULL OR a.tenant_id = $1) AND a.seq < $2 ORDER BY a.seq DESC LIMIT $3
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
                            var view = try AllocationRows.allocation(row, instances: instances[try row.decode("id"), default: []])
                            if namingTenants { view.tenantId = try row.decode("tenant_id") }
                            return view
                        }
                    })
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
                           CASE WHEN kind IN ('preempted', 'preempting') THEN 'preemption' ELSE actor END AS actor
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
    /// The tenant an allocation belongs to, for the admin acting on it.
    public func owner(of id: UUID) async throws -> UUID {
        try await StoreError.translating {
            try await pool.withConnection { c in
                guard let row = try c.query("SELECT tenant_id FROM allocations WHERE id = $1", [id]).first else {
                    throw StoreError.notFound("allocation \(id.lowercased) not found")
                }
                return try row.decode("tenant_id")
            }
        }
    }

    static func requireOwned(_ c: PostgresConnection, id: UUID, tenantId: UUID) throws -> AllocationStatus {
        let rows = try c.query("SELECT status FROM allocations WHERE id = $1 AND tenant_id = $2", [id, tenantId])
        guard let row = rows.first else { throw StoreError.notFound("allocation \(id.lowercased) not found") }
        return try enumValue(row, "status")
    }

    /// One round trip: the allocation's columns repeat on each of its instances' rows (one
    /// row with the instance columns NULL when it has none).
    static func load(_ c: PostgresConnection, id: UUID, tenantId: UUID) throws -> AllocationView {
        let rows = try c.query(
            """
            SELECT \(AllocationRows.allocationColumns), \(AllocationRows.prefixedInstanceColumns)
            FROM allocations a LEFT JOIN instances i ON i.allocation_id = a.id
            WHERE a.id = $1 AND a.tenant_id = $2 ORDER BY i.seq
            """,
            [id, tenantId])
        guard let first = rows.first else { throw StoreError.notFound("allocation \(id.lowercased) not found") }
        let instances = try rows.filter { !$0.isNull("i_id") }.map { try AllocationRows.instance($0, prefix: "i_") }
        return try AllocationRows.allocation(first, instances: instances)
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
