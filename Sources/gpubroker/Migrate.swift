import ArgumentParser
import BrokerStore
import Foundation
import PostgresClient

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply pending database migrations and exit.")

    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let connection = try database.connect(for: "migrate")
        let applied = try MigrationRunner.migrate(connection, Schema.migrations)
        print(applied.isEmpty
            ? "schema is current (version \(Schema.latestVersion))"
            : "applied migrations \(applied.map(String.init).joined(separator: ", ")); schema version \(Schema.latestVersion)")
    }
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the ledger's promises; exit 0 when they hold, 1 with a report when not.")

    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let connection = try database.connect(for: "verify")
        let versions = try MigrationRunner.appliedVersions(connection)
        guard versions.max() == Schema.latestVersion else {
            print("schema version \(versions.max() ?? 0), expected \(Schema.latestVersion): run `gpubroker migrate`")
            throw ExitCode(1)
        }
        let pool = PostgresPool(configuration: PostgresConfiguration(url: database.resolvedURL!), size: 1)
        let report = try await LedgerVerifier(pool: pool).verify()
        await pool.close()
        if report.ok {
            print("ok: \(report.poolsChecked) pools and \(report.allocationsChecked) allocations agree with the ledger")
            return
        }
        print("ledger check failed: \(report.problems.count) problems")
        for problem in report.problems { print("  \(problem)") }
        throw ExitCode(1)
    }
}
