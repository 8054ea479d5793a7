import BrokerCore
import Foundation
import PostgresClient

/// Grants for manifest files: workloads whose pod templates must run side by side (a
/// LeaderWorkerSet's leader and workers, a Ray head and its worker groups, a PyTorchJob's
/// master and workers) get one allocation per template, all in one region, all or none.
extension AllocationStore {
    /// Releases allocations granted for a file whose later workload was refused, and
    /// forgets the idempotency keys they were granted under (each key and its `<key>/<i>`
    /// components), so that a retry with the same key places them afresh instead of
    /// replaying released allocations. Each release is its own transaction, as on
    /// `DELETE /v1/allocations/{id}`; the keys go last.
    public func withdraw(tenantId: UUID, ids: [UUID], idempotencyKeys: [String], actor: String) async throws {
        for id in ids { _ = try await release(tenantId: tenantId, id: id, actor: actor) }
        guard !idempotencyKeys.isEmpty else { return }
        try await StoreError.translating {
            try await pool.withConnection { c in
                _ = try c.query(
                    """
                    DELETE FROM idempotency_keys WHERE tenant_id = $1
                      AND EXISTS (SELECT 1 FROM unnest($2::text[]) k WHERE key = k OR left(key, length(k) + 1) = k || '/')
                    """,
                    [tenantId, idempotencyKeys])
            }
        }
    }

    /// Grants every component in the first of `regions` that can hold them all, each as
    /// its own allocation, in one transaction per region tried; 409 with one decision per
    /// region when none can. Components are granted as given but pinned to the region.
    /// With an idempotency key, component i uses `<key>/<i>`, claimed in the same
    /// transaction: a replay answers the allocations first granted.
    public func createTogether(
        tenantId: UUID, components: [AllocationRequest], regions: [String], actor: String, idempotencyKey: String? = nil
    ) async throws -> [AllocationView] {
        let fingerprints = components.map(Self.fingerprint)
        var decisions: [PlacementDecision] = []
        for region in regions {
            do {
                return try await retryingLostRaces {
                    try await pool.withTransaction { c in
                        try Self.grantTogether(
                            c, tenantId: tenantId, components: components, fingerprints: fingerprints, region: region,
                            actor: actor, idempotencyKey: idempotencyKey)
                    }
                }
            } catch StoreError.insufficientCapacity(let detail, _) {
                decisions.append(PlacementDecision(region: region, replicas: 0, reason: detail))
            }
        }
        let total = components.reduce(0) { $0 + $1.replicas }
        throw StoreError.insufficientCapacity(
            "no region can hold all \(components.count) pod templates (\(total) replicas) together", decisions: decisions)
    }

    private static func grantTogether(
        _ c: PostgresConnection, tenantId: UUID, components: [AllocationRequest], fingerprints: [String],
        region: String, actor: String, idempotencyKey: String?
    ) throws -> [AllocationView] {
        var views: [AllocationView] = []
        for (index, component) in components.enumerated() {
            let key = idempotencyKey.map { "\($0)/\(index)" }
            if let key, let replay = try claimIdempotencyKey(c, tenantId: tenantId, key: key, fingerprint: fingerprints[index]) {
                views.append(replay)
                continue
            }
            var pinned = component
            pinned.region = region
            pinned.placement = nil
            pinned.allOrNothing = true
            pinned.queue = false
            let view = try grant(c, tenantId: tenantId, request: pinned, actor: actor)
            if let key { try recordAnswer(c, tenantId: tenantId, key: key, view) }
            views.append(view)
        }
        return views
    }
}
