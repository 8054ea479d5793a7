import BrokerCore
import Foundation
import PostgresClient

/// Grants for manifest files: every workload of a file in one transaction, all or none.
/// `ManifestGrantPlan` (BrokerCore) says what each workload tries and in which order; each
/// try runs under a savepoint, so a try that fails leaves nothing behind (its idempotency
/// key, a queued allocation, a preemption) and the next one starts clean.
extension AllocationStore {
    /// Grants `plan` in one transaction; one list of allocations per step (empty for a
    /// workload with no pods). The first refusal that no later try overcomes refuses the
    /// file and nothing stays reserved. Keys replay as on `create`: the same file with the
    /// same key answers the allocations first granted.
    public func grantManifest(tenantId: UUID, plan: ManifestGrantPlan, actor: String) async throws -> [[AllocationView]] {
        try await retryingLostRaces {
            try await pool.withTransaction { [pendingLimit] c in
                try Self.grantManifest(c, tenantId: tenantId, plan: plan, actor: actor, pendingLimit: pendingLimit)
            }
        }
    }

    /// `grantManifest` in the caller's transaction (a dry run rolls it back). A lost race
    /// (`LostRace`) leaves the transaction to be run again from the start. Manifests never
    /// queue; `pendingLimit` is the tenant's all the same.
    public static func grantManifest(
        _ c: PostgresConnection, tenantId: UUID, plan: ManifestGrantPlan, actor: String, pendingLimit: Int
    ) throws -> [[AllocationView]] {
        if let lifetime = plan.keyLifetimeSeconds, !plan.keys.isEmpty {
            // A derived key older than its lifetime is a new request, not a retry.
            try c.query(
                "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = ANY($2::text[]) AND created_at < now() - make_interval(secs => $3)",
                [tenantId, plan.keys, lifetime])
        }
        return try plan.steps.map { step in
            switch step {
            case .nothing: return []
            case .firstOf(let alternatives):
                return [try grantFirst(
                    c, tenantId: tenantId, alternatives, actor: actor, pendingLimit: pendingLimit, anyBody: plan.keysNameTheFile)]
            case .together(let group):
                return try grantTogether(
                    c, tenantId: tenantId, group, actor: actor, pendingLimit: pendingLimit, anyBody: plan.keysNameTheFile)
            }
        }
    }

    /// The first request that can be satisfied. With a key, a replay matches the request
    /// that was granted: the others' bodies differ from the recorded one, so they answer
    /// "reused" and are skipped.
    static func grantFirst(
        _ c: PostgresConnection, tenantId: UUID, _ alternatives: ManifestGrantPlan.Alternatives, actor: String,
        pendingLimit: Int, anyBody: Bool
    ) throws -> AllocationView {
        let several = alternatives.requests.count > 1
        var tries: [(detail: String, decisions: [PlacementDecision])] = []
        var reused = false
        for request in alternatives.requests {
            do {
                return try savepoint(c) {
                    try grantKeyed(
                        c, tenantId: tenantId, request: request, as: request, key: alternatives.key, actor: actor,
                        pendingLimit: pendingLimit, anyBody: anyBody)
                }
            } catch StoreError.insufficientCapacity(let detail, let decisions) where several {
                tries.append((detail, decisions))
            } catch StoreError.idempotencyKeyReused where several {
                reused = true
            }
        }
        if reused { throw StoreError.idempotencyKeyReused }
        let (detail, decisions) = alternatives.refusal(tries)
        throw StoreError.insufficientCapacity(detail, decisions: decisions)
    }

    /// Every template in the first region that holds them all; 409 with one decision per
    /// region when none can.
    static func grantTogether(
        _ c: PostgresConnection, tenantId: UUID, _ group: ManifestGrantPlan.Group, actor: String, pendingLimit: Int, anyBody: Bool
    ) throws -> [AllocationView] {
        var decisions: [PlacementDecision] = []
        for region in group.regions {
            do {
                return try savepoint(c) {
                    try zip(group.components, group.pinned(to: region)).enumerated().map { index, pair in
                        try grantKeyed(
                            c, tenantId: tenantId, request: pair.1, as: pair.0, key: group.componentKey(index), actor: actor,
                            pendingLimit: pendingLimit, anyBody: anyBody)
                    }
                }
            } catch StoreError.insufficientCapacity(let detail, _) {
                decisions.append(PlacementDecision(region: region, replicas: 0, reason: detail))
            }
        }
        throw StoreError.insufficientCapacity(group.refusal, decisions: decisions)
    }

    /// Runs `body` under a savepoint: rolled back to it when `body` throws, so the
    /// transaction goes on as if the try had not been made.
    static func savepoint<T>(_ c: PostgresConnection, _ body: () throws -> T) throws -> T {
        try c.query("SAVEPOINT manifest_try")
        do {
            let result = try body()
            try c.query("RELEASE SAVEPOINT manifest_try")
            return result
        } catch {
            // A connection that cannot roll back fails the whole transaction with `error`.
            _ = try? c.query("ROLLBACK TO SAVEPOINT manifest_try")
            throw error
        }
    }
}
