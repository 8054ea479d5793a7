import Foundation
import PostgresClient

/// Checks the ledger's promises: for every pool the `allocated` and `idle` counters,
/// the live instances and the sum of ledger deltas agree, every allocation's
/// `placedReplicas` matches its running instances, and every tenant's usage counters
/// (what quotas are checked against) match its running instances.
///
/// A clean run records a checkpoint (migration 12): the ledger position it proved and,
/// per pool, the sum of deltas up to it. The next run adds up only the rows after it and
/// checks live allocations and instances only, so its cost does not grow with history
/// older than the checkpoint; `full` adds up everything again (with what retention
/// removed) and also checks the checkpoint itself.
public struct LedgerVerifier: Sendable {
    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    public struct Report: Sendable {
        public var poolsChecked: Int
        public var allocationsChecked: Int
        public var problems: [String]
        /// Ledger rows added up: those after `startedFrom`.
        public var ledgerRowsRead: Int
        /// The checkpoint this run started from (0: none, or a full run).
        public var startedFrom: Int64
        /// The checkpoint this run recorded; nil when it found problems or the ledger
        /// stayed busy (see `quietPosition`).
        public var recorded: Int64?
        public var ok: Bool { problems.isEmpty }
    }

    public func verify(full: Bool = false, recordCheckpoint: Bool = true) async throws -> Report {
        let position = recordCheckpoint ? try await quietPosition() : nil
        return try await pool.withTransaction(isolation: .repeatableRead) { c in
            let checkpoint: Int64 = try c.query("SELECT through_seq FROM ledger_checkpoint").first?.decode("through_seq") ?? 0
            let start = full ? 0 : checkpoint
            var problems: [String] = []
            let pools = try Self.pools(c, after: start, upto: position ?? start)
            var proven: [(region: String, pool: String, sum: Int64)] = []
            var rowsRead = 0
            for row in pools {
                let region: String = try row.decode("region_id")
                let poolId: String = try row.decode("pool_id")
                let name = "\(region)/\(poolId)"
                let live: Int = try row.decode("live")
                let ledger: Int = try row.decode("ledger")
                rowsRead += try row.decode("rows_read") as Int
                if try row.decode("counted", as: Bool.self) { proven.append((region, poolId, try row.decode("proven"))) }
                guard let allocated: Int = try row.decodeIfPresent("allocated") else {
                    if live != 0 || ledger != 0 {
                        problems.append("\(name): pool is gone but \(live) live instances and ledger sum \(ledger) remain")
                    }
                    continue
                }
                let idle: Int = try row.decode("idle")
                let liveIdle: Int = try row.decode("live_idle")
                if allocated != live || live != ledger {
                    problems.append("\(name): allocated counter \(allocated), live instances \(live), ledger sum \(ledger)")
                }
                if idle != liveIdle {
                    problems.append("\(name): idle counter \(idle), idle instances \(liveIdle)")
                }
            }
            if full && checkpoint > 0 { problems += try Self.checkpointProblems(c, checkpoint: checkpoint) }
            problems += try Self.allocationProblems(c, full: full)
            problems += try Self.usageProblems(c)
            let checked: Int = try c.query(
                full ? "SELECT count(*)::int AS n FROM allocations"
                    : "SELECT count(*)::int AS n FROM allocations WHERE status IN ('active', 'partial')")[0].decode("n")
            var recorded: Int64?
            if problems.isEmpty, let position, position > checkpoint {
                try Self.record(c, position: position, proven: proven)
                recorded = position
            }
            return Report(
                poolsChecked: pools.filter { !$0.isNull("allocated") }.count, allocationsChecked: checked,
                problems: problems, ledgerRowsRead: rowsRead, startedFrom: start, recorded: recorded)
        }
    }

    /// The ledger's last row at a moment when no write to it is in flight: every row up to
    /// it has committed (or rolled back) and none can appear below it later, which is what
    /// makes it a checkpoint. Waits for writes in flight for at most half a second, during
    /// which new ledger writers queue behind it; nil when the ledger stayed busy that long.
    /// (Shorter than `deadlock_timeout`: a writer holding a row another queued writer
    /// needs is let through by giving up, before the deadlock detector would abort anyone.)
    func quietPosition() async throws -> Int64? {
        do {
            return try await pool.withTransaction { c in
                try c.query("SET LOCAL lock_timeout = '500ms'")
                try c.query("LOCK TABLE ledger IN SHARE MODE")
                return try c.query("SELECT coalesce(max(seq), 0) AS seq FROM ledger")[0].decode("seq")
            }
        } catch let error as PostgresError where error.sqlState == .lockNotAvailable {
            return nil
        }
    }

    /// Per pool: counters, live instances, and the ledger sum as the checkpoint's (or, from
    /// 0, retention's) sums plus the rows after `start`; `proven` is that sum up to `upto`.
    static func pools(_ c: PostgresConnection, after start: Int64, upto: Int64) throws -> PostgresResult {
        try c.query(
            """
            WITH base AS (
                SELECT region_id, pool_id, delta_sum FROM ledger_checkpoint_pools WHERE $1 > 0
                UNION ALL
                SELECT region_id, pool_id, delta_sum FROM ledger_retired WHERE $1 = 0
            ), recent AS (
                SELECT region_id, pool_id, sum(delta) AS total, coalesce(sum(delta) FILTER (WHERE seq <= $2), 0) AS proven,
                       count(*)::int AS n
                FROM ledger WHERE seq > $1 AND pool_id IS NOT NULL GROUP BY region_id, pool_id
            ), deltas AS (
                SELECT coalesce(b.region_id, r.region_id) AS region_id, coalesce(b.pool_id, r.pool_id) AS pool_id,
                       coalesce(b.delta_sum, 0) + coalesce(r.total, 0) AS total,
                       coalesce(b.delta_sum, 0) + coalesce(r.proven, 0) AS proven, coalesce(r.n, 0) AS n
                FROM base b FULL JOIN recent r ON r.region_id = b.region_id AND r.pool_id = b.pool_id
            ), live AS (
                SELECT region_id, pool_id, count(*)::int AS live,
                       count(*) FILTER (WHERE state = 'idle')::int AS idle
                FROM instances WHERE state IN ('running', 'idle', 'preempting') GROUP BY region_id, pool_id
            )
            SELECT coalesce(p.region_id, l.region_id, d.region_id) AS region_id,
                   coalesce(p.id, l.pool_id, d.pool_id) AS pool_id,
                   p.allocated, p.idle, coalesce(l.live, 0) AS live, coalesce(l.idle, 0) AS live_idle,
                   coalesce(d.total, 0)::int AS ledger, coalesce(d.proven, 0)::bigint AS proven,
                   d.region_id IS NOT NULL AS counted, coalesce(d.n, 0) AS rows_read
            FROM pools p
            FULL JOIN live l ON l.region_id = p.region_id AND l.pool_id = p.id
            FULL JOIN deltas d ON d.region_id = coalesce(p.region_id, l.region_id)
                              AND d.pool_id = coalesce(p.id, l.pool_id)
            ORDER BY 1, 2
            """,
            [start, upto])
    }

    /// A full run's check of the checkpoint: its sums against what retention removed
    /// plus the rows at or below it that remain.
    static func checkpointProblems(_ c: PostgresConnection, checkpoint: Int64) throws -> [String] {
        try c.query(
            """
            WITH kept AS (
                SELECT region_id, pool_id, sum(delta) AS total FROM ledger
                WHERE seq <= $1 AND pool_id IS NOT NULL GROUP BY region_id, pool_id
            ), counted AS (
                SELECT coalesce(r.region_id, k.region_id) AS region_id, coalesce(r.pool_id, k.pool_id) AS pool_id,
                       coalesce(r.delta_sum, 0) + coalesce(k.total, 0) AS total
                FROM ledger_retired r FULL JOIN kept k ON k.region_id = r.region_id AND k.pool_id = r.pool_id
            )
            SELECT coalesce(c.region_id, n.region_id) || '/' || coalesce(c.pool_id, n.pool_id) AS name,
                   coalesce(c.delta_sum, 0) AS checkpoint, coalesce(n.total, 0) AS ledger
            FROM ledger_checkpoint_pools c
            FULL JOIN counted n ON n.region_id = c.region_id AND n.pool_id = c.pool_id
            WHERE coalesce(c.delta_sum, 0) <> coalesce(n.total, 0)
            ORDER BY 1
            """,
            [checkpoint]
        ).map { row in
            "\(try row.decode("name") as String): checkpoint at ledger row \(checkpoint) sums \(try row.decode("checkpoint") as Int64), the ledger up to it \(try row.decode("ledger") as Int64)"
        }
    }

    /// Allocations whose `placedReplicas` differs from their running instances. Only
    /// live allocations can place replicas (a constraint of migration 4 keeps every other
    /// status at 0), so outside a full run the check reads live allocations and the
    /// allocations of running instances, not history.
    static func allocationProblems(_ c: PostgresConnection, full: Bool) throws -> [String] {
        try c.query(
            """
            WITH running AS (
                SELECT allocation_id, count(*)::int AS running FROM instances
                WHERE state IN ('running', 'preempting') GROUP BY allocation_id
            ), checked AS (
                \(full
                    ? "SELECT id FROM allocations"
                    : "SELECT id FROM allocations WHERE status IN ('active', 'partial') UNION SELECT allocation_id FROM running")
            )
            SELECT a.id::text AS id, a.status, a.placed_replicas, coalesce(r.running, 0) AS running
            FROM checked k JOIN allocations a ON a.id = k.id
            LEFT JOIN running r ON r.allocation_id = a.id
            WHERE a.placed_replicas <> coalesce(r.running, 0)
            ORDER BY a.seq
            """
        ).map { row in
            "allocation \(try row.decode("id") as String) (\(try row.decode("status") as String)): placedReplicas \(try row.decode("placed_replicas") as Int), running instances \(try row.decode("running") as Int)"
        }
    }

    static func record(_ c: PostgresConnection, position: Int64, proven: [(region: String, pool: String, sum: Int64)]) throws {
        try c.query(
            """
            INSERT INTO ledger_checkpoint_pools AS p (region_id, pool_id, delta_sum)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[]::bigint[])
            ON CONFLICT (region_id, pool_id) DO UPDATE SET delta_sum = excluded.delta_sum
            """,
            [proven.map(\.region), proven.map(\.pool), proven.map { String($0.sum) }])
        try c.query(
            """
            INSERT INTO ledger_checkpoint (through_seq) VALUES ($1)
            ON CONFLICT (singleton) DO UPDATE SET through_seq = excluded.through_seq, taken_at = now()
            """,
            [position])
    }

    /// Tenants whose `tenant_usage` row is missing or differs from what their running
    /// instances use (migration 5); reads running instances only, not history.
    static func usageProblems(_ c: PostgresConnection) throws -> [String] {
        try c.query(
            """
            WITH live AS (
                SELECT d.tenant_id, count(*)::int AS instances, sum(d.gpus)::int AS gpus, sum(d.cpu) AS cpu,
                       sum(d.memory_gib) AS memory_gib
                FROM instances i JOIN allocations a ON a.id = i.allocation_id,
                     LATERAL gpb_usage_of(a.tenant_id, a.request, 1) d
                WHERE i.state IN ('running', 'preempting') GROUP BY d.tenant_id
            )
            SELECT t.id::text AS id, u.tenant_id IS NOT NULL AS counted,
                   format('%s instances, %s GPUs, %s CPU, %s GiB', coalesce(u.instances, 0), coalesce(u.gpus, 0),
                          trim_scale(coalesce(u.cpu, 0)), trim_scale(coalesce(u.memory_gib, 0))) AS counters,
                   format('%s instances, %s GPUs, %s CPU, %s GiB', coalesce(l.instances, 0), coalesce(l.gpus, 0),
                          trim_scale(coalesce(l.cpu, 0)), trim_scale(coalesce(l.memory_gib, 0))) AS running
            FROM tenants t
            LEFT JOIN tenant_usage u ON u.tenant_id = t.id
            LEFT JOIN live l ON l.tenant_id = t.id
            WHERE u.tenant_id IS NULL
               OR (u.instances, u.gpus, u.cpu, u.memory_gib)
                  IS DISTINCT FROM (coalesce(l.instances, 0), coalesce(l.gpus, 0), coalesce(l.cpu, 0), coalesce(l.memory_gib, 0))
            ORDER BY t.id
            """
        ).map { row in
            let id: String = try row.decode("id")
            guard try row.decode("counted", as: Bool.self) else { return "tenant \(id): no usage counters" }
            return "tenant \(id): usage counters \(try row.decode("counters") as String), running instances use \(try row.decode("running") as String)"
        }
    }
}
