import BrokerCore
import Foundation
import PostgresClient

// Rule 8: default-QoS grants reclaim best-effort instances. `GrantPlanner` chooses the
// victims; here they are read (and locked) and taken out of service.
extension AllocationStore {
    /// Plans, and when the plan asks for them reads the preemption candidates and plans again.
    static func planWithPreemption(_ c: PostgresConnection, _ input: GrantInput) throws -> GrantPlan {
        let plan = GrantPlanner.plan(input)
        guard plan.wantsPreemptionCandidates else { return plan }
        var input = input
        input.preemptible = try preemptionCandidates(c, pools: plan.preemptionPools, limit: input.replicas)
        return GrantPlanner.plan(input)
    }

    /// Running best-effort instances on `pools` (`region/pool` keys), newest first. They
    /// are locked, so no one else releases or preempts them meanwhile; ones locked by
    /// others are passed over.
    static func preemptionCandidates(_ c: PostgresConnection, pools: [String], limit: Int) throws -> [PreemptionCandidate] {
        try c.query(
            """
            SELECT i.seq, i.region_id, i.pool_id FROM instances i JOIN allocations a ON a.id = i.allocation_id
            WHERE i.state = 'running' AND a.request->'shape'->>'qos' = 'best-effort'
              AND i.region_id || '/' || i.pool_id = ANY($1::text[])
            ORDER BY i.seq DESC LIMIT $2 FOR UPDATE OF i SKIP LOCKED
            """,
            [pools, limit]
        ).map { row in
            (seq: try row.decode("seq"), region: try row.decode("region_id"), poolId: try row.decode("pool_id"))
        }
    }

    /// Takes preempted instances out of service at once (no warm idle: their capacity
    /// goes to the preempting allocation) and marks their allocations partial. The
    /// victim may belong to another tenant: its decision names no preemptor, and the
    /// preemptor's ids go only to the ledger's actor, which tenants see masked (`events`).
    static func preempt(_ c: PostgresConnection, instanceSeqs: [Int64], for allocationId: UUID, actor: String) throws {
        if instanceSeqs.isEmpty { return }
        try c.query(
            """
            WITH taken AS (
                UPDATE instances SET state = 'preempted', ended_at = clock_timestamp()
                WHERE seq = ANY($1::bigint[]) AND state = 'running'
                RETURNING id, allocation_id, region_id, pool_id
            ), counters AS (
                UPDATE pools p SET allocated = p.allocated - t.n, updated_at = now()
                FROM (SELECT region_id, pool_id, count(*)::int AS n FROM taken GROUP BY region_id, pool_id) t
                WHERE p.region_id = t.region_id AND p.id = t.pool_id
            ), victims AS (
                UPDATE allocations a
                SET placed_replicas = a.placed_replicas - v.n, status = 'partial', updated_at = clock_timestamp(),
                    decisions = a.decisions || jsonb_build_array(jsonb_build_object(
                        'region', '*', 'replicas', 0,
                        'reason', format('%s instance(s) preempted by a default-QoS allocation', v.n)))
                FROM (SELECT allocation_id, count(*)::int AS n FROM taken GROUP BY allocation_id) v
                WHERE a.id = v.allocation_id
            )
            INSERT INTO ledger (kind, region_id, pool_id, allocation_id, instance_id, delta, actor)
            SELECT 'preempted', region_id, pool_id, allocation_id, id, -1, $2 FROM taken
            """,
            [instanceSeqs.map(String.init), "\(actor) allocation:\(allocationId.lowercased)"])
    }
}
