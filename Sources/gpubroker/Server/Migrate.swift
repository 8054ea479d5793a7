import ArgumentParser
import BrokerStore
import Foundation
import PostgresClient

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply pending database migrations and exit.")

    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let outcome = try await database.withDatabase(for: "migrate") { configuration in
            try Schema.migrateReporting(try PostgresConnection.connect(configuration))
        }
        print(Schema.summary(outcome))
    }
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the ledger's promises; exit 0 when they hold, 1 with a report when not.",
        discussion: """
            A clean run records a checkpoint (the ledger position it proved, with each pool's sum \
            up to it); the next run adds up only the ledger rows after it and checks live \
            allocations, so its time does not grow with older history. --full checks everything \
            again, the checkpoint and what --retain-history removed included.
            """)

    @OptionGroup var database: DatabaseOptions

    @Flag(help: "Add up the whole ledger and check every allocation, not only what is newer than the checkpoint.")
    var full = false

    func run() async throws {
        let report = try await database.withDatabase(for: "verify") { configuration in
            let versions = try MigrationRunner.appliedVersions(try PostgresConnection.connect(configuration))
            guard versions.max() == Schema.latestVersion else {
                print("schema version \(versions.max() ?? 0), expected \(Schema.latestVersion): run `gpubroker migrate`")
                throw ExitCode(1)
            }
            let pool = PostgresPool(configuration: configuration, size: 1)
            let report = try await LedgerVerifier(pool: pool).verify(full: full)
            await pool.close()
            return report
        }
        if report.ok {
            let scope = report.startedFrom > 0 ? "ledger rows after checkpoint \(report.startedFrom)" : "ledger rows"
            let checkpoint = report.recorded.map { "checkpoint now at ledger row \($0)" } ?? "checkpoint not moved"
            print("ok: \(report.poolsChecked) pools and \(report.allocationsChecked) \(full ? "" : "live ")allocations agree with the ledger (\(report.ledgerRowsRead) \(scope) read; \(checkpoint))")
            return
        }
        print("ledger check failed: \(report.problems.count) problems")
        for problem in report.problems { print("  \(problem)") }
        throw ExitCode(1)
    }
}
