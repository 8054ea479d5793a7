import BrokerCore
import Foundation
import PostgresClient

/// Allocations and the ledger rows that record each change. The store reads what a
/// plan needs, lets `GrantPlanner` (BrokerCore) decide, and carries the plan out:
/// `GrantExecution.swift` (new allocations), `AllocationChanges.swift` (scale, renew,
/// release), `AllocationReads.swift`, `Preemption.swift`. Reservations are conditional
/// counter updates in SQL that check what the plan assumed, so no pool is ever granted
/// past its capacity however many brokers run.
public struct AllocationStore: Sendable {
    let pool: PostgresPool

    let snapshots: InventorySnapshots

    let batcher: GrantBatcher

    /// Tenant settings for grants outside a transaction, reused for a second: the
    /// batch checks in the database that they still hold (migration 3).
    let settings: ShortLivedCache<UUID, TenantSettings>

    /// Pending allocations a tenant may have at once (`ResourceLimits`).
    let pendingLimit: Int

    /// `snapshotSeconds`: how long grants outside a transaction reuse one inventory
    /// snapshot (0 = always read). Reuse is safe: reservations check capacity and region
    /// state in the database, a lost race reads afresh, and a plan that cannot be met
    /// from a reused snapshot is made again from a fresh one before any 409.
    public init(pool: PostgresPool, snapshotSeconds: Double = 0.05, limits: ResourceLimits = ResourceLimits()) {
        self.pendingLimit = limits[.pendingAllocationsPerTenant]
        self.pool = pool
        self.snapshots = InventorySnapshots(maxAge: .milliseconds(Int64(snapshotSeconds * 1000)))
        self.batcher = GrantBatcher(pool: pool)
        self.settings = ShortLivedCache(lifetime: .seconds(1))
    }

    /// A conditional reservation found less capacity than the plan assumed: another
    /// grant won the race. The transaction is rolled back and planned again.
    struct LostRace: Error {}

    static let maxPlanningAttempts = 8

    /// Plans again after a lost race, with a short random backoff so the losers of one
    /// race do not collide again at once. When every attempt lost, the answer is 503
    /// with Retry-After (nothing was reserved; retrying is safe), never a 500.
    func retryingLostRaces<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await StoreError.translating {
            var attempt = 0
            while true {
                do {
                    return try await body()
                } catch is LostRace {
                    snapshots.invalidate()
                    attempt += 1
                    guard attempt < Self.maxPlanningAttempts else {
                        throw StoreError.unavailable(
                            "capacity is heavily contended: \(attempt) reservations in a row lost the race; retry shortly")
                    }
                    try await Task.sleep(for: .milliseconds(Int.random(in: 1...(4 << min(attempt, 4)))))
                }
            }
        }
    }
}

extension UUID {
    /// The lowercase form the API prints.
    var lowercased: String { uuidString.lowercased() }
}
