import BrokerCore
import Foundation
import PostgresClient

/// `--retain-history`: removes allocations that ended more than `retain` ago, with their
/// instances, ledger rows and region index rows, in batches, and the admin's inventory
/// events older than `retain`. Of allocations, only what can no longer change goes: one
/// released, expired or unschedulable, none of whose instances is running or idle (warm),
/// and whose ledger rows a verify checkpoint covers (the ledger's trigger moves their
/// deltas to `ledger_retired`, migration 12). Every step verifies first and removes
/// nothing when verify finds a problem: the evidence stays.
///
/// What stays exact: pool counters, tenant usage counters (they count running instances),
/// `gpubroker verify` (checkpoint and retired sums), the running-instance history and the
/// usage report for windows that start after the cutoff (a finished allocation's rows add
/// up to no running instance). What goes: those allocations (404), their events, and their
/// share of usage reports and running history for windows before the cutoff.
public struct HistoryRetention: Sendable {
    let pool: PostgresPool
    public let retain: Duration

    public init(pool: PostgresPool, retain: Duration) {
        self.pool = pool
        self.retain = retain
    }

    public struct VerifyFailed: Error, CustomStringConvertible {
        public var problems: [String]
        public var description: String {
            "history retention skipped: verify found \(problems.count) problems, the first: \(problems.first ?? "")"
        }
    }

    /// One pass: verify (recording a checkpoint), then remove what is due, `batch`
    /// allocations per transaction. Returns how many allocations it removed.
    public func step(batch: Int = 1000) async throws -> Int {
        let report = try await LedgerVerifier(pool: pool).verify()
        guard report.ok else { throw VerifyFailed(problems: report.problems) }
        return try await StoreError.translating {
            let bounds = try await pool.withConnection { c in
                try c.query(
                    """
                    SELECT now() - make_interval(secs => $1) AS cutoff,
                           coalesce((SELECT through_seq FROM ledger_checkpoint), 0) AS through
                    """,
                    [Double(retain.components.seconds) + Double(retain.components.attoseconds) / 1e18])[0]
            }
            let cutoff: Date = try bounds.decode("cutoff")
            let through: Int64 = try bounds.decode("through")
            var removed = 0
            while true {
                let count = try await removeBatch(cutoff: cutoff, through: through, limit: batch)
                removed += count
                if count < batch { break }
            }
            // Inventory events (migration 11) describe regions and pools, not allocations:
            // nothing is counted from them, so their age alone decides.
            try await pool.withConnection { c in
                try c.query("DELETE FROM inventory_events WHERE at < $1", [cutoff])
            }
            return removed
        }
    }

    /// The ended statuses as SQL literals: `allocations_ended` serves only a query that names
    /// its predicate's values, which bound parameters would not.
    static let endedStatuses = AllocationStatus.allCases.filter(\.hasEnded).map { "'\($0.rawValue)'" }.joined(separator: ", ")

    /// Read through `allocations_ended` (migration 12), oldest end first: what is due, and
    /// the few ended allocations that must stay a while (a warm instance, rows newer than
    /// the checkpoint), never the history younger than the cutoff.
    private func removeBatch(cutoff: Date, through: Int64, limit: Int) async throws -> Int {
        try await pool.withTransaction { c in
            let ids: [String] = try c.query(
                """
                SELECT a.id::text AS id FROM allocations a
                WHERE a.status IN (\(Self.endedStatuses)) AND a.updated_at < $1
                  AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.allocation_id = a.id AND i.state IN ('running', 'idle', 'preempting'))
                  AND NOT EXISTS (SELECT 1 FROM ledger l WHERE l.allocation_id = a.id AND l.seq > $2)
                ORDER BY a.updated_at LIMIT $3
                FOR UPDATE SKIP LOCKED
                """,
                [cutoff, through, limit]
            ).map { try $0.decode("id") }
            if ids.isEmpty { return 0 }
            try c.query(
                """
                DELETE FROM allocation_regions r
                USING (SELECT DISTINCT a.tenant_id, i.region_id, a.seq FROM allocations a
                       JOIN instances i ON i.allocation_id = a.id WHERE a.id = ANY($1::uuid[])) g
                WHERE r.tenant_id = g.tenant_id AND r.region_id = g.region_id AND r.allocation_seq = g.seq
                """, [ids])
            try c.query("DELETE FROM ledger WHERE allocation_id = ANY($1::uuid[])", [ids])
            try c.query("DELETE FROM instances WHERE allocation_id = ANY($1::uuid[])", [ids])
            try c.query("DELETE FROM allocations WHERE id = ANY($1::uuid[])", [ids])
            return ids.count
        }
    }
}
