@testable import BrokerStore
import BrokerCore
import Foundation
import PostgresClient
import TestHarness
import TestSupport
import XCTest

final class InventorySnapshotTests: XCTestCase {
    /// Requests that find the snapshot stale together share one read, and see what an
    /// admin changed through the store at once.
    func testConcurrentCallersShareOneReadAndWritesShowAtOnce() async throws {
        let pool = PostgresPool(configuration: try PostgresConfiguration(url: try TestDatabase.create()), size: 4)
        let store = InventoryStore(pool: pool, snapshotSeconds: 60)
        let counts = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<32 { group.addTask { try await store.recentInventory().regions.count } }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        XCTAssertEqual(counts, Array(repeating: 0, count: 32))
        XCTAssertEqual(store.snapshots.reads, 1)
        _ = try await store.createRegion(
            Region(id: "a", kind: .serverless, primary: true, vpcId: "v", vSwitchIds: ["s"], securityGroupId: "g"))
        let after = try await store.recentInventory()
        XCTAssertEqual(after.regions.map(\.region.id), ["a"])
        XCTAssertEqual(store.snapshots.reads, 2)
        await pool.close()
    }
}

/// The inventory kept by changes (migration 13): each read takes only what was written
/// since the last, and no change is missed whatever order transactions commit in.
final class InventoryChangesTests: XCTestCase {
    var url = ""
    var admin: PostgresConnection!

    override func setUpWithError() throws {
        url = try TestDatabase.create()
        admin = try PostgresConnection.connect(PostgresConfiguration(url: url))
        try admin.query(
            """
            INSERT INTO regions (id, kind, is_primary, vpc_id, vswitch_ids, security_group_id, state)
            SELECT 'r' || g, 'serverless', g = 1, 'vpc', '{vsw}', 'sg', 'active' FROM generate_series(1, 20) g
            """)
        try admin.query(
            """
            INSERT INTO pools (region_id, id, compute_class, qos, cpu, memory_gib, instance_type, capacity, price_per_hour)
            SELECT r.id, 'p' || g, 'general-purpose', '{default}', 2, 4, 'ecs.g', 10, 1
            FROM regions r, generate_series(1, 5) g
            """)
    }

    func capacity(_ snapshot: InventorySnapshot, _ region: String, _ pool: String) -> Int? {
        snapshot.regions.first { $0.region.id == region }?.pools.first { $0.pool.id == pool }?.pool.capacity
    }

    /// A second read returns only the pool written in between, not the 100.
    func testReadsOnlyWhatChanged() throws {
        let first = try InventoryStore.changes(admin, since: 0)
        XCTAssertEqual(first.regions.count, 20)
        XCTAssertEqual(first.pools.count, 100)
        try admin.query("UPDATE pools SET allocated = 3 WHERE region_id = 'r7' AND id = 'p2'")
        let next = try InventoryStore.changes(admin, since: first.horizon)
        XCTAssertEqual(next.pools.map { "\($0.pool.regionId)/\($0.pool.id)/\($0.allocated)" }, ["r7/p2/3"])
        XCTAssertEqual(next.regions.map(\.id), ["r7"])
        XCTAssertEqual(next.removals, first.removals)
    }

    /// A change committed after a read that ran while its transaction was open is read next
    /// time, though a later transaction's change was read first.
    func testChangeCommittedAfterAReadIsNotMissed() async throws {
        let pool = PostgresPool(configuration: try PostgresConfiguration(url: url), size: 2)
        let store = InventoryStore(pool: pool, snapshotSeconds: 60)
        _ = try await store.recentInventory()
        let slow = try PostgresConnection.connect(PostgresConfiguration(url: url))
        try slow.query("BEGIN")
        try slow.query("UPDATE pools SET capacity = 77 WHERE region_id = 'r3' AND id = 'p1'")
        try admin.query("UPDATE pools SET capacity = 55 WHERE region_id = 'r4' AND id = 'p1'")
        store.dropCachedInventory()
        let during = try await store.recentInventory()
        XCTAssertEqual(capacity(during, "r4", "p1"), 55)
        XCTAssertEqual(capacity(during, "r3", "p1"), 10)
        try slow.query("COMMIT")
        store.dropCachedInventory()
        let after = try await store.recentInventory()
        XCTAssertEqual(capacity(after, "r3", "p1"), 77)
        XCTAssertEqual(capacity(after, "r4", "p1"), 55)
        XCTAssertGreaterThan(after.serial, during.serial)
        // Nothing written since: the same inventory under the same serial.
        store.dropCachedInventory()
        let unchanged = try await store.recentInventory()
        XCTAssertEqual(unchanged.serial, after.serial)
        await pool.close()
    }

    /// Past its age an inventory still answers at once while it is read again; past its age
    /// and two seconds a caller waits for the read.
    func testAnAgedInventoryAnswersWhileItIsReadAgain() async throws {
        let pool = PostgresPool(configuration: try PostgresConfiguration(url: url), size: 2)
        let store = InventoryStore(pool: pool, snapshotSeconds: 0.5)
        _ = try await store.recentInventory()
        try admin.query("UPDATE pools SET capacity = 66 WHERE region_id = 'r2' AND id = 'p1'")
        try await Task.sleep(for: .milliseconds(600))
        let aged = try await store.recentInventory()
        XCTAssertEqual(capacity(aged, "r2", "p1"), 10)
        var fresh = aged
        for _ in 0..<100 where capacity(fresh, "r2", "p1") != 66 {
            try await Task.sleep(for: .milliseconds(20))
            fresh = try await store.recentInventory()
        }
        XCTAssertEqual(capacity(fresh, "r2", "p1"), 66)
        try admin.query("UPDATE pools SET capacity = 67 WHERE region_id = 'r2' AND id = 'p1'")
        try await Task.sleep(for: .milliseconds(2600))
        let old = try await store.recentInventory()
        XCTAssertEqual(capacity(old, "r2", "p1"), 67)
        await pool.close()
    }

    /// Removals leave no row to read: the count makes the next read read everything.
    func testRemovalsAndAdditionsShow() async throws {
        let pool = PostgresPool(configuration: try PostgresConfiguration(url: url), size: 2)
        let store = InventoryStore(pool: pool, snapshotSeconds: 60)
        let before = try await store.recentInventory()
        XCTAssertEqual(before.regions.count, 20)
        try admin.query("DELETE FROM pools WHERE region_id = 'r20'")
        try admin.query("DELETE FROM regions WHERE id = 'r20'")
        try admin.query("DELETE FROM pools WHERE region_id = 'r5' AND id = 'p3'")
        try admin.query(
            """
            INSERT INTO regions (id, kind, is_primary, vpc_id, vswitch_ids, security_group_id, state)
            VALUES ('r0', 'serverless', false, 'vpc', '{vsw}', 'sg', 'active')
            """)
        store.dropCachedInventory()
        let after = try await store.recentInventory()
        XCTAssertEqual(after.regions.map(\.region.id), (0..<20).map { "r\($0)" }.sorted())
        XCTAssertEqual(after.regions.first { $0.region.id == "r5" }?.pools.map(\.pool.id), ["p1", "p2", "p4", "p5"])
        XCTAssertEqual(after.inventory.index.regions(fitting: ComputeShape(computeClass: .generalPurpose, cpu: 1, memoryGiB: 1)).count, 19)
        await pool.close()
    }

    /// The batch grant looks pools up by index at any size: with 20,000 pools
    /// its guessed 10,000 placements made it scan every pool twice per batch.
    func testBatchGrantPlansWithoutPoolScans() throws {
        let config = try admin.query(
            "SELECT array_to_string(proconfig, ',') AS config FROM pg_proc WHERE oid = 'gpb_grant_batch(gpb_planned_grant[])'::regprocedure")
        let settings = try config[0].decode("config", as: String.self).split(separator: ",")
        XCTAssertTrue(settings.contains("enable_seqscan=off"), "\(settings)")
    }
}
