import PostgresClient

/// The database's schema, compiled into the binary so that `gpubroker` migrates from any
/// working directory: the numbered migrations of `migrations/` (tables, indexes,
/// constraints, data moves: the past states) and the definitions of `definitions/`
/// (functions and triggers: current code, one file per concern). A test checks that every
/// file of both folders is listed here.
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
        Migration(version: 14, name: "0014_accelerators.sql", sql: text(PackageResources._014_accelerators_sql)),
        Migration(version: 15, name: "0015_admin_credential.sql", sql: text(PackageResources._015_admin_credential_sql)),
        Migration(version: 16, name: "0016_fair_shares.sql", sql: text(PackageResources._016_fair_shares_sql)),
        Migration(version: 17, name: "0017_capacity_loss.sql", sql: text(PackageResources._017_capacity_loss_sql)),
        Migration(version: 18, name: "0018_api_tokens.sql", sql: text(PackageResources._018_api_tokens_sql)),
    ]

    /// Versions 1-13 were numbered per branch and reached main out of order (0008 before
    /// 0005 and 0006, 0012 before 0010, 0009 last): a database may hold any of them with
    /// gaps, filled in version order. From 14 on, applied versions are a prefix of the list.
    public static let order = MigrationOrder(migrations, legacyThrough: 13)

    /// In name order, as scripts apply them with psql. A trigger's WHEN clause and a SQL
    /// function's body need what they call to exist when created (PL/pgSQL bodies are
    /// resolved when run): keep such calls within one file, or in a file named after.
    public static let definitions = Definitions(
        files: [
            ("budgets.sql", text(PackageResources.budgets_sql)),
            ("events.sql", text(PackageResources.events_sql)),
            ("grants.sql", text(PackageResources.grants_sql)),
            ("history.sql", text(PackageResources.history_sql)),
            ("invariants.sql", text(PackageResources.invariants_sql)),
            ("inventory.sql", text(PackageResources.inventory_sql)),
            ("money.sql", text(PackageResources.money_sql)),
            ("notifications.sql", text(PackageResources.notifications_sql)),
            ("preemption.sql", text(PackageResources.preemption_sql)),
            ("reports.sql", text(PackageResources.reports_sql)),
            ("usage.sql", text(PackageResources.usage_sql)),
            ("webhooks.sql", text(PackageResources.webhooks_sql)),
        ],
        dropAll: dropAll)

    /// Every trigger that runs a `gpb_` function, every `gpb_` function and every `gpb_`
    /// composite type of the schema: what the definitions create, and what older versions of
    /// them created (a function renamed or removed goes too). CASCADE reaches only objects
    /// of versions 4-8, whose QoS constraint called gpb_valid_qos (migration 9 writes it
    /// again); SchemaTests checks that nothing else depends on a definition.
    static let dropAll = """
        DO $drop$
        DECLARE
            o record;
        BEGIN
            FOR o IN SELECT t.tgname, t.tgrelid::regclass AS tbl FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
                     WHERE NOT t.tgisinternal AND p.proname LIKE 'gpb\\_%' AND p.pronamespace = current_schema()::regnamespace
            LOOP
                EXECUTE format('DROP TRIGGER %I ON %s', o.tgname, o.tbl);
            END LOOP;
            FOR o IN SELECT p.oid::regprocedure AS fn FROM pg_proc p
                     WHERE p.proname LIKE 'gpb\\_%' AND p.pronamespace = current_schema()::regnamespace
            LOOP
                EXECUTE format('DROP FUNCTION %s CASCADE', o.fn);
            END LOOP;
            FOR o IN SELECT t.oid::regtype AS ty FROM pg_type t JOIN pg_class c ON c.oid = t.typrelid
                     WHERE t.typname LIKE 'gpb\\_%' AND c.relkind = 'c' AND t.typnamespace = current_schema()::regnamespace
            LOOP
                EXECUTE format('DROP TYPE %s CASCADE', o.ty);
            END LOOP;
        END
        $drop$
        """

    public static var latestVersion: Int { migrations.map(\.version).max() ?? 0 }

    /// Brings a database to this build's schema (`MigrationRunner.migrate`).
    public static func migrate(_ connection: PostgresConnection) throws -> [Int] {
        try MigrationRunner.migrate(connection, order, definitions: definitions)
    }

    /// `migrate`, saying which definition files were applied again as well.
    public static func migrateReporting(_ connection: PostgresConnection) throws -> MigrationRunner.Outcome {
        try MigrationRunner.migrateReporting(connection, order, definitions: definitions)
    }

    /// What `gpubroker migrate` prints about an outcome.
    public static func summary(_ outcome: MigrationRunner.Outcome) -> String {
        var parts: [String] = []
        if !outcome.versions.isEmpty {
            parts.append("applied migrations \(outcome.versions.map(String.init).joined(separator: ", "))")
        }
        if !outcome.changedDefinitions.isEmpty {
            parts.append("applied changed definitions \(outcome.changedDefinitions.joined(separator: ", "))")
        }
        return parts.isEmpty
            ? "schema is current (version \(latestVersion)); nothing applied"
            : parts.joined(separator: "; ") + "; schema version \(latestVersion)"
    }

    private static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}
