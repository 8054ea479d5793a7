import BrokerCore
import Foundation
import PostgresClient

/// Where a pending allocation stands: the pending requests that compete for a pool it
/// could use and come before it in the admitter's order (`AdmissionOrder`), the replicas they still miss, and an estimate of when it may be
/// admitted from the rate at which those pools released instances over the last hour.
public struct QueuePosition: Codable, Sendable, Equatable {
    /// 1: next among the requests competing for its pools, in admission order.
    public var position: Int
    /// Replicas the requests ahead still miss.
    public var replicasAhead: Int
    /// Replicas this allocation still misses.
    public var replicasWanted: Int
    /// "region/pool" of every pool it could use now (active regions, its shape and pin).
    public var pools: [String]
    /// Instances those pools gave back (released, expired, preempted) in the last hour.
    public var releasesLastHour: Int
    /// now + (replicasAhead + replicasWanted) / (releasesLastHour per hour); null
    /// without releases to estimate from or without a pool to wait for.
    public var estimatedAdmissionAt: Date?

    enum CodingKeys: String, CodingKey {
        case position, replicasAhead, replicasWanted, pools, releasesLastHour, estimatedAdmissionAt
    }

    /// `estimatedAdmissionAt` is written as null rather than left out.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(position, forKey: .position)
        try c.encode(replicasAhead, forKey: .replicasAhead)
        try c.encode(replicasWanted, forKey: .replicasWanted)
        try c.encode(pools, forKey: .pools)
        try c.encode(releasesLastHour, forKey: .releasesLastHour)
        try c.encode(estimatedAdmissionAt, forKey: .estimatedAdmissionAt)
    }
}

public struct QueuePositionStore: Sendable {
    let pool: PostgresPool
    /// The admitter's (`MaintenanceStore`): the queue is counted in the order it admits.
    let starvationLimit: Duration

    public init(sharingPoolOf allocations: AllocationStore, starvationLimit: Duration = MaintenanceStore.defaultStarvationLimit) {
        pool = allocations.pool
        self.starvationLimit = starvationLimit
    }

    /// "region/pool" of every pool the request could use now (active regions, its shape and pin).
    static func pools(_ request: AllocationRequest, in inventory: [RegionInventory]) -> Set<String> {
        Set(inventory.filter { request.region == nil || $0.region.id == request.region }.flatMap { region in
            PlacementPlanner.candidatePools(request.shape, in: region).map { "\(region.region.id)/\($0.pool.id)" }
        })
    }

    private static func entry(_ row: PostgresRow) throws -> AdmissionOrder.Entry {
        AdmissionOrder.Entry(seq: try row.decode("seq"), tenant: try row.decode("tenant"), waitedSeconds: try row.decode("waited"))
    }

    public func position(tenantId: UUID, id: UUID) async throws -> QueuePosition {
        try await StoreError.translating {
            try await pool.withTransaction(isolation: .repeatableRead) { c in
                try Self.position(c, tenantId: tenantId, id: id, starvationLimit: starvationLimit)
            }
        }
    }

    /// A pending allocation's position as the caller's transaction sees the queue (a
    /// dry run's own pending row included).
    static func position(
        _ c: PostgresConnection, tenantId: UUID, id: UUID,
        starvationLimit: Duration = MaintenanceStore.defaultStarvationLimit
    ) throws -> QueuePosition {
        guard let row = try c.query(
            """
            SELECT status, seq, tenant_id::text AS tenant, request::text AS request,
                   replicas - placed_replicas AS wanted, now() AS now,
                   extract(epoch FROM clock_timestamp() - created_at)::float8 AS waited
            FROM allocations WHERE id = $1 AND tenant_id = $2
            """, [id, tenantId]
        ).first else { throw StoreError.notFound("allocation '\(id.uuidString.lowercased())' not found") }
        let status: String = try row.decode("status")
        guard status == AllocationStatus.pending.rawValue else {
            throw StoreError.conflict("allocation is \(status): only a pending allocation has a queue position")
        }
        let inventory = try InventoryStore.snapshot(c)
        let own = Self.pools(try row.decodeJSON("request"), in: inventory)
        let order = AdmissionOrder(
            starvationLimitSeconds: starvationLimit / .seconds(1), shares: try ShareStore.snapshot(c).dominantShares)
        let mine = try Self.entry(row)
        var position = 1
        var ahead = 0
        for other in try c.query(
            """
            SELECT seq, tenant_id::text AS tenant, extract(epoch FROM clock_timestamp() - created_at)::float8 AS waited,
                   request::text AS request, replicas - placed_replicas AS wanted
            FROM allocations WHERE status = 'pending' AND seq <> $1 ORDER BY seq
            """, [mine.seq])
        where try order.precedes(Self.entry(other), mine)
            && !own.isDisjoint(with: Self.pools(other.decodeJSON("request"), in: inventory))
        {
            position += 1
            ahead += try other.decode("wanted", as: Int.self)
        }
        let sorted = own.sorted()
        let split = sorted.map { $0.split(separator: "/", maxSplits: 1).map(String.init) }
        let releases: Int = try c.query(
            """
            SELECT count(*)::int AS n FROM ledger l
            JOIN unnest($1::text[], $2::text[]) AS p (region_id, pool_id)
              ON l.region_id = p.region_id AND l.pool_id = p.pool_id
            WHERE l.kind IN ('released', 'expired', 'preempted') AND l.at > now() - interval '1 hour'
            """, [split.map { $0[0] }, split.map { $0[1] }])[0].decode("n")
        let wanted: Int = try row.decode("wanted")
        let now: Date = try row.decode("now")
        let estimate = releases > 0 && !own.isEmpty
            ? now.addingTimeInterval(Double(ahead + wanted) / Double(releases) * 3600) : nil
        return QueuePosition(
            position: position, replicasAhead: ahead, replicasWanted: wanted, pools: sorted,
            releasesLastHour: releases, estimatedAdmissionAt: estimate)
    }
}
