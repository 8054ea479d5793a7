import Foundation
import PostgresClient

/// Checks the ledger's promises: for every pool the `allocated` and `idle` counters,
/// the live instances and the sum of ledger deltas agree, every allocation's
/// `placedReplicas` matches its running instances, and every tenant's usage counters
/// (what quotas are checked against) match its running instances.
public struct LedgerVerifier: Sendable {
    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    public struct Report: Sendable {
        public var poolsChecked: Int
        public var allocationsChecked: Int
        public var problems: [String]
        public var ok: Bool { problems.isEmpty }
    }

    public func verify() async throws -> Report {
        try await pool.withTransaction(isolation: .repeatableRead) { c in
            var problems: [String] = []
            let pools = try c.query(
                """
                WITH live AS (
                    SELECT region_id, pool_id, count(*)::int AS live,
                           count(*) FILTER (WHERE state = 'idle')::int AS idle
                    FROM instances WHERE state IN ('running', 'idle') GROUP BY region_id, pool_id
                ), deltas AS (
                    SELECT region_id, pool_id, sum(delta)::int AS total
                    FROM ledger WHERE pool_id IS NOT NULL GROUP BY region_id, pool_id
                )
                SELECT coalesce(p.region_id, l.region_id, d.region_id) AS region_id,
                       coalesce(p.id, l.pool_id, d.pool_id) AS pool_id,
                       p.allocated, p.idle, coalesce(l.live, 0) AS live, coalesce(l.idle, 0) AS live_idle,
                       coalesce(d.total, 0) AS ledger
                FROM pools p
                FULL JOIN live l ON l.region_id = p.region_id AND l.pool_id = p.id
                FULL JOIN deltas d ON d.region_id = coalesce(p.region_id, l.region_id)
                                  AND d.pool_id = coalesce(p.id, l.pool_id)
                ORDER BY 1, 2
                """)
            for row in pools {
                let name = "\(try row.decode("region_id") as String)/\(try row.decode("pool_id") as String)"
                let live: Int = try row.decode("live")
                let ledger: Int = try row.decode("ledger")
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
            // One grouped pass over the instances, not a count per allocation: verify runs on
            // ledgers with many thousands of allocations of history.
            let mismatched = try c.query(
                """
                SELECT a.id::text AS id, a.status, a.placed_replicas, coalesce(r.running, 0) AS running
                FROM allocations a
                LEFT JOIN (SELECT allocation_id, count(*)::int AS running FROM instances
                           WHERE state = 'running' GROUP BY allocation_id) r ON r.allocation_id = a.id
                WHERE a.placed_replicas <> coalesce(r.running, 0)
                ORDER BY a.seq
                """)
            for row in mismatched {
                problems.append(
                    "allocation \(try row.decode("id") as String) (\(try row.decode("status") as String)): placedReplicas \(try row.decode("placed_replicas") as Int), running instances \(try row.decode("running") as Int)")
            }
            problems += try Self.usageProblems(c)
            let checked: Int = try c.query("SELECT count(*)::int AS n FROM allocations")[0].decode("n")
            return Report(poolsChecked: pools.count, allocationsChecked: checked, problems: problems)
        }
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
                WHERE i.state = 'running' GROUP BY d.tenant_id
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
