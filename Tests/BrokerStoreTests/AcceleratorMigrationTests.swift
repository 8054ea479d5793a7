import BrokerStore
import Foundation
import PostgresClient
import TestHarness
import TestSupport
import XCTest

/// Migration 14 gives pools reported before vendors existed the vendor of their model.
final class AcceleratorMigrationTests: XCTestCase {
    func testPoolsReportedBeforeVendorsGetTheVendorOfTheirModel() throws {
        // Its own database: the shared template is migrated to the latest version.
        let name = "gpubroker_m14_\(UUID().uuidString.prefix(8).lowercased())"
        try TestDatabase.connect().executeScript("CREATE DATABASE \(name)")
        let connection = try PostgresConnection.connect(PostgresConfiguration(url: try TestDatabase.url(for: name)))
        // The tables as version 13 left them (the definitions are current code: they name the new columns).
        _ = try MigrationRunner.migrate(connection, MigrationOrder(Schema.migrations.filter { $0.version < 14 }, legacyThrough: 13))
        try connection.query(
            "INSERT INTO regions (id, kind, is_primary, vpc_id, vswitch_ids, security_group_id, state) VALUES ('r', 'serverless', true, 'v', '{s}', 'g', 'active')")
        for (id, series) in [("t4", "T4"), ("h100", "h100"), ("mi", "MI300X"), ("gaudi", "Gaudi2"), ("inf", "Inferentia2"),
                             ("odd", "example-model")] {
            try connection.query(
                """
                INSERT INTO pools (region_id, id, compute_class, qos, gpu_series, gpu_memory_gib, gpus_per_instance, cpu,
                    memory_gib, instance_type, capacity, price_per_hour)
                VALUES ('r', $1, 'gpu', '{default}', $2, 16, 1, 4, 16, 'x', 1, 1)
                """, [id, series])
        }
        try connection.query(
            "INSERT INTO pools (region_id, id, compute_class, qos, cpu, memory_gib, instance_type, capacity, price_per_hour) VALUES ('r', 'cpu', 'general-purpose', '{default}', 4, 16, 'c', 1, 1)")
        XCTAssertEqual(try Schema.migrate(connection).first, 14)
        let rows = try connection.query("SELECT id, gpu_vendor FROM pools ORDER BY id")
        let vendors = try Dictionary(uniqueKeysWithValues: rows.map { (try $0.decode("id") as String, try $0.decodeIfPresent("gpu_vendor") as String?) })
        XCTAssertEqual(vendors, ["t4": "nvidia", "h100": "nvidia", "mi": "amd", "gaudi": "intel", "inf": "aws", "odd": "other", "cpu": nil])
        // From now on the database holds it (InvariantTests: the constraints one by one).
    }
}
