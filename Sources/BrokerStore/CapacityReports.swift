import BrokerCore
import Foundation
import PostgresClient

// Reports from the real world (migration 17, definitions/reports.sql): a region's agent
// says instances were lost or a pool ran out of stock, and the broker stops believing
// its inventory for them.
extension AllocationStore {
    /// Carries a report out once per report id: the same id and body answer the first
    /// answer (a concurrent duplicate waits for the first to commit), another body with
    /// the id is a conflict. Unknown instances answer 404 and change nothing; instances
    /// already out of service are listed as such and counted no further.
    public func report(_ report: CapacityReport, actor: String) async throws -> CapacityReportAnswer {
        let fingerprint = try StoreJSON.encoder.encodeText(report)
        defer { snapshots.invalidate() }
        return try await StoreError.translating {
            try await pool.withTransaction { c in
                let claimed = try c.query(
                    """
                    INSERT INTO capacity_reports (id, kind, request_hash, answer)
                    VALUES ($1, $2, sha256(convert_to($3, 'UTF8')), '{}') ON CONFLICT (id) DO NOTHING RETURNING created_at
                    """,
                    [report.id, report.kind.rawValue, fingerprint])
                guard let received: Date = try claimed.first?.decode("created_at") else {
                    let first = try c.query(
                        """
                        SELECT request_hash = sha256(convert_to($2, 'UTF8')) AS same, answer::text AS answer
                        FROM capacity_reports WHERE id = $1
                        """,
                        [report.id, fingerprint])[0]
                    guard try first.decode("same", as: Bool.self) else {
                        throw StoreError.conflict("report '\(report.id)' was already made with another body; give a new report its own id")
                    }
                    return try first.decodeJSON("answer")
                }
                let answer =
                    report.kind == .outOfStock
                    ? try Self.outOfStock(c, report, received: received)
                    : try Self.lost(c, report, received: received, actor: actor)
                try c.query("UPDATE capacity_reports SET answer = $2::jsonb WHERE id = $1", [report.id, try PostgresJSON(answer)])
                return answer
            }
        }
    }

    /// Stops the live ones of the reported instances (`gpb_report_lost`) and admits what
    /// waited for a preempting one among them.
    static func lost(_ c: PostgresConnection, _ report: CapacityReport, received: Date, actor: String) throws -> CapacityReportAnswer {
        let ids = report.instances.map(\.lowercased)
        // Only ids with no live row are looked up among all rows (no index on `id` but
        // the live one's: the grant path pays for every index of `instances`).
        let unknown: [String] = try c.query(
            """
            SELECT r.id::text AS id FROM unnest($1::uuid[]) AS r (id)
            WHERE NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = r.id AND i.state IN ('running', 'idle', 'preempting'))
              AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = r.id)
            """,
            [ids]
        ).map { try $0.decode("id") }
        guard unknown.isEmpty else {
            throw StoreError.notFound("no instance \(unknown.joined(separator: ", ")): nothing was changed")
        }
        let rows = try c.query(
            "SELECT instance_id, allocation_id, waiting FROM gpb_report_lost($1::uuid[], $2, $3, $4)",
            [ids, report.kind.rawValue, report.reason, actor])
        let stopped: [UUID] = try rows.map { try $0.decode("instance_id") }
        try admitWaiting(c, Array(Set(try rows.compactMap { try $0.decodeIfPresent("waiting", as: UUID.self) })))
        try recover(c, allocationIds: try rows.compactMap { try $0.decodeIfPresent("allocation_id", as: UUID.self) })
        return CapacityReportAnswer(
            id: report.id, kind: report.kind, receivedAt: received, stopped: stopped.map(ResourceID.init),
            alreadyStopped: report.instances.filter { !stopped.contains($0) }.map(ResourceID.init))
    }

    /// Lowers what the pool offers for the cool-down (`gpb_report_out_of_stock`).
    static func outOfStock(_ c: PostgresConnection, _ report: CapacityReport, received: Date) throws -> CapacityReportAnswer {
        let row = try c.query(
            """
            SELECT gpb_report_out_of_stock($1, $2, $3, $5::timestamptz + make_interval(secs => $4), $6, $7) AS found,
                   $5::timestamptz + make_interval(secs => $4) AS until
            """,
            [report.region, report.poolId, report.available ?? 0, report.coolDownSeconds ?? 0, received, report.reason,
             report.id])[0]
        guard try row.decode("found", as: Bool.self) else {
            throw StoreError.notFound("pool '\(report.poolId ?? "")' not found in region '\(report.region ?? "")'")
        }
        return CapacityReportAnswer(id: report.id, kind: report.kind, receivedAt: received, coolDownUntil: try row.decode("until"))
    }
}

extension MaintenanceStore {
    /// The cool-down worker: pools whose stock-out has ended get their reported capacity
    /// back (`gpb_end_stockouts`). Returns how many.
    public func endStockOuts() async throws -> Int {
        try await StoreError.translating {
            try await pool.withConnection { c in try c.query("SELECT gpb_end_stockouts() AS n")[0].decode("n") }
        }
    }
}

extension InventoryStore {
    /// The region's pools out of stock now, by pool id.
    public func stockOuts(regionId: String) async throws -> [String: PoolStockOut] {
        try await StoreError.translating {
            try await pool.withConnection { c in
                var found: [String: PoolStockOut] = [:]
                for row in try c.query(
                    """
                    SELECT pool_id, available, restore_capacity, until, reason, report_id FROM pool_stockouts
                    WHERE region_id = $1 AND until > now()
                    """,
                    [regionId])
                {
                    found[try row.decode("pool_id")] = PoolStockOut(
                        available: try row.decode("available"), reportedCapacity: try row.decode("restore_capacity"),
                        until: try row.decode("until"), reason: try row.decode("reason"), reportId: try row.decode("report_id"))
                }
                return found
            }
        }
    }
}
