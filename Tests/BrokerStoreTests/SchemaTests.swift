import BrokerStore
import Foundation
import PostgresClient
import TestHarness
import TestSupport
import XCTest

final class SchemaTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func sqlFiles(_ folder: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(folder).path)
            .filter { $0.hasSuffix(".sql") }.sorted()
    }

    /// A file left out of `Schema` would never run.
    func testEveryMigrationAndDefinitionFileIsCompiledIn() throws {
        let files = try Self.sqlFiles("migrations")
        XCTAssertEqual(Schema.migrations.map(\.name), files)
        XCTAssertEqual(Schema.migrations.map(\.version), files.map { Int($0.prefix(4))! }, "versions are the files' numbers")
        for migration in Schema.migrations {
            let onDisk = try String(contentsOf: Self.root.appendingPathComponent("migrations/" + migration.name), encoding: .utf8)
            XCTAssertEqual(migration.sql, onDisk)
        }
        XCTAssertEqual(Schema.definitions.files.map(\.name), try Self.sqlFiles("definitions"), "in name order, as scripts apply them")
        for file in Schema.definitions.files {
            let onDisk = try String(contentsOf: Self.root.appendingPathComponent("definitions/" + file.name), encoding: .utf8)
            XCTAssertEqual(file.sql, onDisk)
        }
    }

    /// Migrations describe past states; code in the database has one current definition.
    func testMigrationsHoldNoFunctionOrTrigger() throws {
        for name in try Self.sqlFiles("migrations") {
            let sql = try String(contentsOf: Self.root.appendingPathComponent("migrations/" + name), encoding: .utf8)
            let code = sql.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("--") }
                .joined(separator: "\n").uppercased()
            for forbidden in ["FUNCTION", "TRIGGER", "$$", "CREATE VIEW", "CREATE TYPE", "DO $"] {
                XCTAssertFalse(code.contains(forbidden), "\(name) holds \(forbidden): move it to definitions/")
            }
        }
    }

    func testMigratingTwiceAppliesNothingTheSecondTime() throws {
        let url = try TestDatabase.create()
        let connection = try PostgresConnection.connect(PostgresConfiguration(url: url))
        XCTAssertEqual(try Schema.migrate(connection), [])
        XCTAssertEqual(try MigrationRunner.appliedVersions(connection), Schema.migrations.map(\.version))
        let recorded = try connection.query("SELECT name FROM schema_definitions ORDER BY name").map { try $0.decode("name", as: String.self) }
        XCTAssertEqual(recorded, try Self.sqlFiles("definitions"))
    }

    /// A definition file whose checksum differs is applied again, from nothing: a function
    /// no file defines any more is gone, and the others are back.
    func testAChangedDefinitionIsAppliedAgainAndWhatNoFileDefinesGoes() throws {
        let url = try TestDatabase.create()
        let connection = try PostgresConnection.connect(PostgresConfiguration(url: url))
        let count = "SELECT (SELECT count(*) FROM pg_proc WHERE proname LIKE 'gpb\\_%')::int AS functions, (SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid WHERE p.proname LIKE 'gpb\\_%')::int AS triggers"
        let before = try connection.query(count)[0]
        try connection.executeScript("""
            CREATE FUNCTION gpb_obsolete() RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$;
            UPDATE schema_definitions SET sha256 = 'edited' WHERE name = 'grants.sql'
            """)
        let outcome = try Schema.migrateReporting(connection)
        XCTAssertEqual(outcome.versions, [])
        XCTAssertEqual(outcome.changedDefinitions, ["grants.sql"], "the file found changed, by name")
        XCTAssertEqual(Schema.summary(outcome), "applied changed definitions grants.sql; schema version \(Schema.latestVersion)",
                       "`migrate` says what it applied, not that the schema was current")
        XCTAssertTrue(try Schema.migrateReporting(connection).changedNothing, "and then nothing is left to apply")
        XCTAssertTrue(try connection.query("SELECT to_regproc('gpb_obsolete') IS NULL AS gone")[0].decode("gone", as: Bool.self))
        let after = try connection.query(count)[0]
        XCTAssertEqual(try after.decode("functions", as: Int.self), try before.decode("functions", as: Int.self))
        XCTAssertEqual(try after.decode("triggers", as: Int.self), try before.decode("triggers", as: Int.self))
        let sha = try connection.query("SELECT sha256 FROM schema_definitions WHERE name = 'grants.sql'")[0].decode("sha256", as: String.self)
        XCTAssertNotEqual(sha, "edited")
    }

    /// Dropping the definitions (CASCADE) must never take a table's constraint, default or
    /// index with it: only triggers may depend on a `gpb_` function.
    func testOnlyTriggersDependOnDefinitions() throws {
        let url = try TestDatabase.create()
        let connection = try PostgresConnection.connect(PostgresConfiguration(url: url))
        let dependents = try connection.query("""
            SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS object
            FROM pg_depend d JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND d.refobjid = p.oid
            WHERE p.proname LIKE 'gpb\\_%' AND d.classid NOT IN ('pg_trigger'::regclass, 'pg_proc'::regclass)
            """).map { try $0.decode("object", as: String.self) }
        XCTAssertEqual(dependents, [])
    }

    /// A database migrated in another order is refused with the reason, and left as it was.
    func testADatabaseOutOfOrderIsRefused() throws {
        let url = try TestDatabase.create()
        let connection = try PostgresConnection.connect(PostgresConfiguration(url: url))
        // Two versions after the last one known, applied out of order.
        let (a, b) = (Schema.latestVersion + 1, Schema.latestVersion + 2)
        let order = MigrationOrder(Schema.migrations + [
            Migration(version: a, name: "00\(a)_a.sql", sql: "CREATE TABLE a (id int)"),
            Migration(version: b, name: "00\(b)_b.sql", sql: "CREATE TABLE b (id int)"),
        ], legacyThrough: 13)
        try connection.executeScript("INSERT INTO schema_migrations (version, name) VALUES (\(b), '00\(b)_b.sql')")
        XCTAssertThrowsError(try MigrationRunner.migrate(connection, order, definitions: Schema.definitions)) { error in
            XCTAssertTrue("\(error)".contains("\(a) missing before \(b)"), "\(error)")
        }
        XCTAssertTrue(try connection.query("SELECT to_regclass('a') IS NULL AS untouched")[0].decode("untouched", as: Bool.self))
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
