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
