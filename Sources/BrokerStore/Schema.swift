import PostgresClient

/// The numbered SQL files of `migrations/`, compiled into the binary so that
/// `gpubroker` migrates from any working directory. A test checks that every file in
/// the folder is listed here.
public enum Schema {
    public static let migrations: [Migration] = [
        Migration(version: 1, name: "0001_init.sql", sql: text(PackageResources._001_init_sql)),
        Migration(version: 2, name: "0002_grant_functions.sql", sql: text(PackageResources._002_grant_functions_sql)),
        Migration(version: 3, name: "0003_grant_batches.sql", sql: text(PackageResources._003_grant_batches_sql)),
        Migration(version: 4, name: "0004_invariants.sql", sql: text(PackageResources._004_invariants_sql)),
        Migration(version: 5, name: "0005_usage_counters.sql", sql: text(PackageResources._005_usage_counters_sql)),
        Migration(version: 6, name: "0006_events.sql", sql: text(PackageResources._006_events_sql)),
        Migration(version: 8, name: "0008_money.sql", sql: text(PackageResources._008_money_sql)),
        Migration(version: 9, name: "0009_grant_path_cost.sql", sql: text(PackageResources._009_grant_path_cost_sql)),
        Migration(version: 10, name: "0010_budgets.sql", sql: text(PackageResources._010_budgets_sql)),
        Migration(version: 11, name: "0011_event_gaps.sql", sql: text(PackageResources._011_event_gaps_sql)),
        Migration(version: 12, name: "0012_history.sql", sql: text(PackageResources._012_history_sql)),
        Migration(version: 13, name: "0013_inventory_changes.sql", sql: text(PackageResources._013_inventory_changes_sql)),
        Migration(version: 16, name: "0016_operator.sql", sql: text(PackageResources._016_operator_sql)),
    ]

    public static var latestVersion: Int { migrations.map(\.version).max() ?? 0 }

    private static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}
