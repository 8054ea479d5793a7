import BrokerStore
import Foundation
import PostgresClient
import TestHarness
import TestSupport
import XCTest

final class SchemaTests: XCTestCase {
    /// A migration file left out of `Schema.migrations` would never run.
    func testEveryMigrationFileIsCompiledIn() throws {
        let folder = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("migrations")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".sql") }.sorted()
        XCTAssertEqual(Schema.migrations.map(\.name), files)
        // Numbers are handed out ahead of time, so one may land before a lower one.
        XCTAssertEqual(Schema.migrations.map(\.version), files.map { Int($0.prefix(4))! }, "versions are the files' numbers")
        for migration in Schema.migrations {
            let onDisk = try String(contentsOf: folder.appendingPathComponent(migration.name), encoding: .utf8)
            XCTAssertEqual(migration.sql, onDisk)
        }
    }

    func testMigratingTwiceAppliesNothingTheSecondTime() throws {
        let url = try TestDatabase.create()
        let connection = try PostgresConnection.connect(PostgresConfiguration(url: url))
        XCTAssertEqual(try MigrationRunner.migrate(connection, Schema.migrations), [])
        XCTAssertEqual(try MigrationRunner.appliedVersions(connection), Schema.migrations.map(\.version))
    }

    /// The database itself refuses a second primary region, whatever the code does.
    func testTheSchemaAllowsOnlyOnePrimaryRegion() throws {
        let url = try TestDatabase.create()
        let connection = try PostgresConnection.connect(PostgresConfiguration(url: url))
        try connection.query(
            "INSERT INTO regions (id, kind, is_primary, vpc_id, vswitch_ids, security_group_id, state) VALUES ('a', 'serverless', true, 'v', '{s}', 'g', 'active')")
        XCTAssertThrowsError(
            try connection.query(
                "INSERT INTO regions (id, kind, is_primary, vpc_id, vswitch_ids, security_group_id, state) VALUES ('b', 'serverless', true, 'v', '{s}', 'g', 'active')")
        ) { error in
            XCTAssertEqual((error as? PostgresError)?.sqlState, .uniqueViolation)
        }
    }
}
