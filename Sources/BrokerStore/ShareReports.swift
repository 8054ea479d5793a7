import BrokerCore
import Foundation
import PostgresClient

/// One resource of a tenant's share report.
public struct ResourceStanding: Codable, Sendable, Equatable {
    public var resource: String
    public var guaranteed: Double
    public var weight: Double
    public var borrowingLimit: Double?
    public var lendingLimit: Double?
    /// Held by the tenant's running instances.
    public var held: Double
    /// Held above the guarantee.
    public var borrowed: Double
    /// Of the unused guarantee (within the lending limit), what others of its cohort borrow now.
    public var lent: Double
    /// What the pools of active regions hold of the resource.
    public var poolsHold: Double

    enum CodingKeys: String, CodingKey {
        case resource, guaranteed, weight, borrowingLimit, lendingLimit, held, borrowed, lent, poolsHold
    }

    /// Limits are written as null rather than left out.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(resource, forKey: .resource)
        try c.encode(guaranteed, forKey: .guaranteed)
        try c.encode(weight, forKey: .weight)
        try c.encode(borrowingLimit, forKey: .borrowingLimit)
        try c.encode(lendingLimit, forKey: .lendingLimit)
        try c.encode(held, forKey: .held)
        try c.encode(borrowed, forKey: .borrowed)
        try c.encode(lent, forKey: .lent)
        try c.encode(poolsHold, forKey: .poolsHold)
    }
}

/// "Why my share is X": a tenant's standing against its entitlement (`GET /v1/shares`).
public struct ShareReport: Codable, Sendable, Equatable {
    public var tenantId: String
    public var tenantName: String
    public var cohort: String?
    /// The weighted dominant share the pending queue is ordered by (lowest first).
    public var dominantShare: Double
    public var resources: [ResourceStanding]
    public var pendingAllocations: Int
    public var pendingReplicas: Int
    /// In words, why its next request would or would not be admitted now.
    public var nextRequest: String

    enum CodingKeys: String, CodingKey {
        case tenantId, tenantName, cohort, dominantShare, resources, pendingAllocations, pendingReplicas, nextRequest
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(tenantId, forKey: .tenantId)
        try c.encode(tenantName, forKey: .tenantName)
        try c.encode(cohort, forKey: .cohort)
        try c.encode(dominantShare, forKey: .dominantShare)
        try c.encode(resources, forKey: .resources)
        try c.encode(pendingAllocations, forKey: .pendingAllocations)
        try c.encode(pendingReplicas, forKey: .pendingReplicas)
        try c.encode(nextRequest, forKey: .nextRequest)
    }
}

extension ShareStore {
    /// The report of one tenant (`tenantId`) or of every tenant (nil), from one snapshot.
    public func reports(tenantId: UUID? = nil) async throws -> [ShareReport] {
        try await StoreError.translating {
            try await pool.withTransaction(isolation: .repeatableRead) { c in
                let snapshot = try Self.snapshot(c)
                let free: Bool = try c.query(
                    """
                    SELECT EXISTS (SELECT 1 FROM pools p JOIN regions r ON r.id = p.region_id
                                   WHERE r.state = 'active' AND p.capacity > p.allocated) AS free
                    """)[0].decode("free")
                let tenants = try c.query(
                    """
                    SELECT t.id::text AS id, t.name, count(a.id)::int AS pending,
                           coalesce(sum(a.replicas - a.placed_replicas), 0)::int AS replicas
                    FROM tenants t LEFT JOIN allocations a ON a.tenant_id = t.id AND a.status = 'pending'
                    WHERE $1::uuid IS NULL OR t.id = $1
                    GROUP BY t.id, t.name, t.created_at ORDER BY t.created_at, t.id
                    """, [tenantId])
                if let tenantId, tenants.isEmpty { throw StoreError.notFound("tenant '\(tenantId.lowercased)' not found") }
                return try tenants.map { row in
                    let standing = snapshot.standing(try row.decode("id"))
                    let pending: Int = try row.decode("pending")
                    return ShareReport(
                        tenantId: standing.tenant, tenantName: try row.decode("name"), cohort: standing.share.cohort,
                        dominantShare: standing.dominantShare(capacity: snapshot.capacity),
                        resources: snapshot.resourceStandings(of: standing), pendingAllocations: pending,
                        pendingReplicas: try row.decode("replicas"),
                        nextRequest: FairShare.explain(standing, capacity: snapshot.capacity, pending: pending, free: free))
                }
            }
        }
    }
}

extension ShareSnapshot {
    /// Every resource the tenant has a share of or holds, by name.
    func resourceStandings(of standing: TenantStanding) -> [ResourceStanding] {
        Set(standing.share.resources.keys).union(standing.held.keys).sorted().map { resource in
            let share = standing.share.share(of: resource)
            let held = standing.held[resource] ?? 0
            let unused = min(max(0, share.guaranteed - held), share.lendingLimit ?? .infinity)
            let borrowedByCohort = standings.values
                .filter { $0.tenant != standing.tenant && $0.share.cohort == standing.share.cohort }
                .reduce(0) { $0 + $1.borrowed(resource) }
            return ResourceStanding(
                resource: resource, guaranteed: share.guaranteed, weight: share.weight, borrowingLimit: share.borrowingLimit,
                lendingLimit: share.lendingLimit, held: held, borrowed: standing.borrowed(resource),
                lent: min(unused, borrowedByCohort), poolsHold: capacity[resource] ?? 0)
        }
    }
}
