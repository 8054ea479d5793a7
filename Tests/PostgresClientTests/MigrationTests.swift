import Foundation
import PostgresClient
import TestHarness
import XCTest

final class MigrationTests: XCTestCase {
    static let migrations = [
        Migration(version: 1, name: "gpus", sql: "CREATE TABLE gpus (id uuid PRIMARY KEY, model text NOT NULL)"),
        Migration(version: 2, name: "slow index", sql: "SELECT pg_sleep(0.3); CREATE INDEX gpus_model ON gpus (model)"),
        Migration(version: 3, name: "leases", sql: """
            CREATE TABLE leases (id bigserial PRIMARY KEY, gpu uuid NOT NULL REFERENCES gpus (id));
            ALTER TABLE gpus ADD COLUMN memory_gb int NOT NULL DEFAULT 80;
            """),
    ]

    private func connection(inSchema schema: String, fresh: Bool) throws -> PostgresConnection {
        let connection = try TestDatabase.connect()
        if fresh { try connection.executeScript("DROP SCHEMA IF EXISTS \(schema) CASCADE; CREATE SCHEMA \(schema)") }
        try connection.executeScript("SET search_path TO \(schema)")
        return connection
    }

    func testMigrationsAreIdempotent() throws {
        let connection = try connection(inSchema: "pgc_mig_idem", fresh: true)
        XCTAssertEqual(try MigrationRunner.appliedVersions(connection), [])
        XCTAssertEqual(try MigrationRunner.migrate(connection, Array(Self.migrations.prefix(2).reversed())), [1, 2])
        XCTAssertEqual(try MigrationRunner.migrate(connection, Self.migrations), [3])
        XCTAssertEqual(try MigrationRunner.migrate(connection, Self.migrations), [])
        XCTAssertEqual(try MigrationRunner.appliedVersions(connection), [1, 2, 3])
        let names = try connection.query("SELECT name FROM schema_migrations ORDER BY version").map { try $0.decode("name", as: String.self) }
        XCTAssertEqual(names, ["gpus", "slow index", "leases"])

        // A failing migration leaves nothing behind and is not recorded.
        let broken = Migration(version: 4, name: "broken", sql: "CREATE TABLE half (id int); SELECT no_such_function()")
        XCTAssertThrowsError(try MigrationRunner.migrate(connection, Self.migrations + [broken]))
        XCTAssertEqual(try MigrationRunner.appliedVersions(connection), [1, 2, 3])
        XCTAssertTrue(try connection.query("SELECT to_regclass('half') IS NULL AS gone")[0].decode("gone", as: Bool.self))
        XCTAssertTrue(connection.isHealthy)
        try connection.executeScript("DROP SCHEMA pgc_mig_idem CASCADE")
    }

    /// Versions up to `legacyThrough` may have gaps (filled in in version order); after them,
    /// applied versions are a prefix of the known order.
    func testAppliedVersionsMustBeAPrefixOfTheKnownOrder() {
        let versions = [1, 2, 3, 4, 5, 6, 8, 9, 10, 14, 15]
        let order = MigrationOrder(versions.map { Migration(version: $0, name: "\($0)", sql: "") }, legacyThrough: 10)
        XCTAssertNil(order.problem(applied: []))
        XCTAssertNil(order.problem(applied: [1, 2, 3, 4, 8]), "legacy versions with gaps")
        XCTAssertNil(order.problem(applied: [1, 2, 3, 4, 5, 6, 8, 10, 9]), "0009 after 0010")
        XCTAssertNil(order.problem(applied: [1, 2, 3, 4, 5, 6, 8, 9, 10, 14]))
        XCTAssertNil(order.problem(applied: versions))
        XCTAssertEqual(order.problem(applied: [1, 2, 3, 4, 5, 6, 8, 9, 10, 15]),
                       "the database's migrations are not a prefix of the known order: 14 missing before 15; it was migrated in another order and cannot be upgraded in place")
        XCTAssertNotNil(order.problem(applied: [1, 2, 3, 4, 14]), "a numbered version over legacy gaps")
        XCTAssertEqual(order.problem(applied: [1, 2, 16]),
                       "the database has migrations 16 that this gpubroker does not know (a newer or another branch's build migrated it)")
    }

    func testConcurrentMigratorsAgree() async throws {
        _ = try connection(inSchema: "pgc_mig_race", fresh: true)
        var configuration = try TestDatabase.configuration
        configuration.applicationName = "pgc-migrator"
        let pools = [PostgresPool(configuration: configuration, size: 1), PostgresPool(configuration: configuration, size: 1)]
        let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
            for pool in pools {
                group.addTask {
                    try await pool.withConnection { connection in
                        try connection.executeScript("SET search_path TO pgc_mig_race")
                        return try MigrationRunner.migrate(connection, Self.migrations)
                    }
                }
            }
            return try await group.reduce(into: [[Int]]()) { $0.append($1) }
        }
        XCTAssertEqual(applied.flatMap { $0 }.sorted(), [1, 2, 3], "each version applied by exactly one migrator: \(applied)")
        let check = try connection(inSchema: "pgc_mig_race", fresh: false)
        let recorded = try check.query("SELECT version, count(*) OVER (PARTITION BY version) AS n FROM schema_migrations ORDER BY version")
        XCTAssertEqual(try recorded.map { try $0.decode("version", as: Int.self) }, [1, 2, 3])
        XCTAssertEqual(try recorded.map { try $0.decode("n", as: Int.self) }, [1, 1, 1])
        XCTAssertTrue(try check.query("SELECT to_regclass('leases') IS NOT NULL AS ok")[0].decode("ok", as: Bool.self))
        for pool in pools { await pool.close() }
        try check.executeScript("DROP SCHEMA pgc_mig_race CASCADE")
    }
}
