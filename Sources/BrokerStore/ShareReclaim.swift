import BrokerCore
import Foundation
import PostgresClient

/// Which instances a tenant under its guarantee reclaims when nothing is free (issue 28):
/// running instances of other tenants on the pools its request could use, chosen by
/// `FairShare.reclaimVictims` (borrowed capacity only, highest share first, newest first,
/// only when it strictly improves the fairness order). Taking them is
/// `AllocationStore.preempt`'s job; this file only chooses.
enum ShareReclaim {
    /// Instances considered per pool shape, newest first.
    static let candidateLimit = 1000

    static func victims(
        _ c: PostgresConnection, tenant: String, request: AllocationRequest, shares: ShareSnapshot
    ) throws -> [Int64] {
        let preemptor = shares.standing(tenant)
        // Most requests end here: only a tenant short of a guarantee reclaims.
        guard preemptor.underSomeGuarantee else { return [] }
        let pools = try InventoryStore.snapshot(c, fitting: request.shape)
            .filter { request.region == nil || $0.region.id == request.region }
            .flatMap { PlacementPlanner.candidatePools(request.shape, in: $0) }
        func use(_ p: PoolUsage) -> [String: Double] {
            ShareResource.use(
                gpuSeries: p.pool.gpuSeries, gpus: Double(p.pool.gpusPerInstance ?? 0), cpu: p.pool.cpu, memoryGiB: p.pool.memoryGiB)
        }
        // One instance shape at a time, most preferred first: the need is what its instances hold.
        var tried: Set<[String: Double]> = []
        for first in pools where tried.insert(use(first)).inserted {
            let shape = use(first)
            let same = pools.filter { use($0) == shape }
            let missing = request.replicas - same.map(\.grantable).reduce(0, +)
            var need: [String: Double] = [:]
            need.add(shape, times: Double(request.replicas))
            guard missing > 0, preemptor.staysWithinGuarantee(adding: need) else { continue }
            let candidates = try c.query(
                """
                SELECT i.seq, a.tenant_id::text AS tenant, i.gpu_series, i.gpu_count::float8 AS gpus,
                       i.cpu::float8 AS cpu, i.memory_gib::float8 AS memory
                FROM instances i JOIN allocations a ON a.id = i.allocation_id
                JOIN unnest($2::text[], $3::text[]) AS p (region_id, pool_id)
                  ON i.region_id = p.region_id AND i.pool_id = p.pool_id
                WHERE i.state = 'running' AND a.tenant_id <> $1::uuid
                ORDER BY i.seq DESC LIMIT $4
                """,
                [tenant, same.map(\.pool.regionId), same.map(\.pool.id), candidateLimit]
            ).map { row in
                ReclaimCandidate(
                    seq: try row.decode("seq"), tenant: try row.decode("tenant"),
                    use: ShareResource.use(
                        gpuSeries: try row.decodeIfPresent("gpu_series"), gpus: try row.decode("gpus"),
                        cpu: try row.decode("cpu"), memoryGiB: try row.decode("memory")))
            }
            let victims = FairShare.reclaimVictims(
                for: preemptor, need: need, count: missing, candidates: candidates, standings: shares.standings,
                capacity: shares.capacity)
            if !victims.isEmpty { return victims }
        }
        return []
    }
}
