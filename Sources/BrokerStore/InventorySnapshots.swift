import BrokerCore
import Foundation
import PostgresClient
import Synchronization

/// Every region with its pools as one read saw them.
public struct InventorySnapshot: Sendable {
    public let inventory: Inventory
    /// Distinct for every inventory that differs from the one before, and larger for a
    /// later one: what is computed from a snapshot alone can be kept under its serial.
    public let serial: Int

    public var regions: [RegionInventory] { inventory.regions }
}

/// The inventory kept in memory and brought up to date at most every `maxAge`, by reading
/// only the regions and pools written since the last read (migration 13's `changed_xid`):
/// at 20,000 pools a full read took 130 ms, longer than a snapshot lived, and grants
/// change a few pools between two reads. A removal (counted by the database) or the first
/// read reads everything.
final class InventorySnapshots: Sendable {
    let maxAge: Duration

    /// The inventory as of one read, and where the next read starts.
    private struct Kept {
        var snapshot: InventorySnapshot
        /// Changes of transactions at or above this id had not all been seen.
        var horizon: Int64
        var removals: Int64
        var taken: ContinuousClock.Instant
        /// The `State.generation` it was read in: a later `invalidate()` makes it stale.
        var generation: Int
    }

    private struct State {
        var kept: Kept?
        /// Bumped by `invalidate()`: a read that started before it does not count as fresh.
        var generation = 0
        /// The read under way, which every caller that finds the inventory stale awaits:
        /// without it, all requests in flight when it goes stale read at once.
        var refresh: (task: Task<InventorySnapshot, any Error>, generation: Int)?
        var reads = 0
        var serial = 0
    }

    private let state = Mutex(State())

    static let staleGrace = Duration.seconds(2)

    init(maxAge: Duration) {
        self.maxAge = maxAge
    }

    /// Reads from the database so far.
    var reads: Int { state.withLock { $0.reads } }

    /// The inventory, brought up to date (by one caller for all) when it is older than
    /// `maxAge` or was invalidated. Reads run one after another, each from the last. An
    /// inventory past `maxAge` by less than `staleGrace`, and not invalidated, is answered
    /// at once while the read runs: no request waits for a routine read, even one slowed by
    /// a checkpoint or a busy machine (a one-second stall was measured at 20,000 pools);
    /// once a database stops answering, callers wait and see its error.
    func current(_ pool: PostgresPool) async throws -> InventorySnapshot {
        let (kept, refresh) = state.withLock { state -> (InventorySnapshot?, Task<InventorySnapshot, any Error>?) in
            var usable: InventorySnapshot?
            if let kept = state.kept, kept.generation == state.generation {
                let age = ContinuousClock.now - kept.taken
                if age < maxAge { return (kept.snapshot, nil) }
                if age < maxAge + Self.staleGrace { usable = kept.snapshot }
            }
            if let running = state.refresh, running.generation == state.generation {
                return (usable, usable == nil ? running.task : nil)
            }
            let previous = state.refresh?.task
            let generation = state.generation
            state.reads += 1
            let task = Task {
                _ = try? await previous?.value
                return try await self.read(pool, generation: generation)
            }
            state.refresh = (task, generation)
            return (usable, usable == nil ? task : nil)
        }
        if let kept { return kept }
        return try await refresh!.value
    }

    private func read(_ pool: PostgresPool, generation: Int) async throws -> InventorySnapshot {
        defer {
            state.withLock { if $0.refresh?.generation == generation { $0.refresh = nil } }
        }
        let base = state.withLock { $0.kept }
        let taken = ContinuousClock.now
        let changes = try await pool.withConnection { c in
            var changes = try InventoryStore.changes(c, since: base?.horizon ?? 0)
            if let base, changes.removals != base.removals { changes = try InventoryStore.changes(c, since: 0) }
            return changes
        }
        return state.withLock { state in
            var inventory = changes.full ? Inventory() : base?.snapshot.inventory ?? Inventory()
            var serial = base?.snapshot.serial ?? 0
            if changes.full || !changes.regions.isEmpty || !changes.pools.isEmpty {
                inventory = inventory.applying(regions: changes.regions, pools: changes.pools)
                state.serial += 1
                serial = state.serial
            }
            let snapshot = InventorySnapshot(inventory: inventory, serial: serial)
            state.kept = Kept(
                snapshot: snapshot, horizon: changes.horizon, removals: changes.removals, taken: taken,
                generation: generation)
            return snapshot
        }
    }

    /// After a write: the next caller reads again, even while a read that began before
    /// the write is still under way (its result is kept, but as stale).
    func invalidate() {
        state.withLock { $0.generation += 1 }
    }
}

/// What changed in the inventory since a horizon.
struct InventoryChanges {
    var regions: [Region] = []
    var pools: [PoolUsage] = []
    /// Where the next read starts: the oldest transaction this read could not see.
    var horizon: Int64 = 0
    var removals: Int64 = 0
    /// Read since 0: every row, to replace what was kept.
    var full = false
}

extension InventoryStore {
    /// Regions and pools written by transactions at or above `horizon` (every row for 0),
    /// each region with its changed pools, in one statement: the horizon and the removals
    /// count come from the same snapshot as the rows.
    static func changes(_ c: PostgresConnection, since horizon: Int64) throws -> InventoryChanges {
        let rows = try c.query(
            """
            SELECT h.horizon, h.removals, c.*
            FROM (SELECT gpb_event_horizon() AS horizon, (SELECT removals FROM inventory_removals) AS removals) h
            LEFT JOIN (
                SELECT \(RegionColumns.list), \(PoolColumns.list)
                FROM regions r LEFT JOIN pools p ON p.region_id = r.id AND p.changed_xid >= $1
                WHERE r.changed_xid >= $1 OR p.id IS NOT NULL
            ) c ON true
            ORDER BY c.region_id, c.pool_id
            """,
            [horizon])
        var changes = InventoryChanges(full: horizon == 0)
        changes.horizon = try rows[0].decode("horizon")
        changes.removals = try rows[0].decode("removals")
        for row in rows where !row.isNull("region_id") {
            let regionId: String = try row.decode("region_id")
            if changes.regions.last?.id != regionId { changes.regions.append(try RegionColumns.decode(row)) }
            if !row.isNull("pool_id") { changes.pools.append(try PoolColumns.decode(row)) }
        }
        return changes
    }
}
