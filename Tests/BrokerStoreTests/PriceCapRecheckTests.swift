import BrokerCore
@testable import BrokerStore
import Foundation
import PostgresClient
import TestHarness
import XCTest

/// A price cap is checked again where the grant locks its pools: a plan made from an
/// inventory snapshot that still shows the old price never lands on a pool whose price
/// has since risen past the cap.
final class PriceCapRecheckTests: XCTestCase {
    var url = ""
    var connection: PostgresConnection!
    var pool: PostgresPool!
    let tenant = UUID()

    override func setUpWithError() throws {
        url = try TestDatabase.create()
        connection = try PostgresConnection.connect(PostgresConfiguration(url: url))
        pool = PostgresPool(configuration: try PostgresConfiguration(url: url), size: 4)
        try connection.query(
            """
            INSERT INTO regions (id, kind, is_primary, vpc_id, vswitch_ids, security_group_id, state)
            VALUES ('a', 'serverless', true, 'vpc-a', '{vsw-a}', 'sg-a', 'active')
            """)
        try connection.query(
            """
            INSERT INTO pools (region_id, id, compute_class, qos, cpu, memory_gib, instance_type, capacity, price_per_hour)
            VALUES ('a', 'p', 'general-purpose', '{default}', 2, 4, 'ecs.g8i.large', 30, 1)
            """)
        try connection.query(
            "INSERT INTO tenants (id, name, token_hash) VALUES ($1, 'capped', sha256('capped-token'::bytea))", [tenant])
    }

    override func tearDown() async throws {
        await pool.close()
    }

    func request(cap: Double) -> AllocationRequest {
        AllocationRequest(
            shape: ComputeShape(computeClass: .generalPurpose, cpu: 2, memoryGiB: 4, maxPricePerHour: cap), replicas: 1,
            leaseSeconds: 60)
    }

    /// The batched path plans from a snapshot up to `snapshotSeconds` old; the batch
    /// statement (`gpb_grants_affordable`) compares the locked pool's price with the cap.
    /// (Grants in a transaction of their own read inventory in it and check the locked
    /// pools after reserving: a window too short to hit from a test.)
    func testAPriceRaisedAfterTheSnapshotIsNotGranted() async throws {
        // Snapshots live a minute here, so the second plan reads the old price for sure.
        let store = AllocationStore(pool: pool, snapshotSeconds: 60)
        _ = try await store.create(tenantId: tenant, request: request(cap: 2), actor: "test")
        try connection.query("UPDATE pools SET price_per_hour = 3")
        do {
            let granted = try await store.create(tenantId: tenant, request: request(cap: 2), actor: "test")
            XCTFail("granted at 3/h under a cap of 2: \(granted.instances.map(\.poolId))")
        } catch StoreError.insufficientCapacity(_, let decisions) {
            XCTAssertTrue(decisions.contains { $0.reason.contains("maxPricePerHour") }, "\(decisions)")
        }
        let allocated: Int = try connection.query("SELECT allocated FROM pools")[0].decode("allocated")
        XCTAssertEqual(allocated, 1, "only the grant made at 1/h")
    }
}
