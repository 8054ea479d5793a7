/// One numbered schema change. Never edit a migration once shipped: add a new one.
public struct Migration: Sendable, Hashable {
    public let version: Int
    public let name: String
    public let sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }
}

/// Applies migrations, recording them in `schema_migrations` (in the first schema of the
/// connection's `search_path`).
public enum MigrationRunner {
    /// The `pg_advisory_lock` key every migrator takes, so brokers starting together take turns.
    public static let advisoryLockKey: Int64 = 0x6770_6272_6F6B_6572  // "gpbroker"

    /// Applies pending migrations in version order, each in its own transaction together with
    /// its `schema_migrations(version int primary key, name text, applied_at timestamptz)` row,
    /// under a session-level `pg_advisory_lock` so that concurrent migrators serialise.
    /// Returns the versions applied (empty when the schema was current).
    ///
    /// The connection must not be inside a transaction. Migration SQL runs with `PQexec` and
    /// must not contain its own `BEGIN`/`COMMIT`.
    public static func migrate(_ connection: PostgresConnection, _ migrations: [Migration]) throws -> [Int] {
        let sorted = migrations.sorted { $0.version < $1.version }
        for (previous, next) in zip(sorted, sorted.dropFirst()) where previous.version == next.version {
            throw PostgresError(kind: .server, message: "two migrations have version \(next.version)")
        }
        try connection.query("SELECT pg_advisory_lock($1::bigint)", [advisoryLockKey])
        defer {
            if connection.resetForReuse() {
                _ = try? connection.query("SELECT pg_advisory_unlock($1::bigint)", [advisoryLockKey])
            }
        }
        try connection.executeScript("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """)
        let applied = Set(try appliedVersions(connection))
        var newlyApplied: [Int] = []
        for migration in sorted where !applied.contains(migration.version) {
            try connection.command("BEGIN")
            do {
                try connection.executeScript(migration.sql)
                try connection.query(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    [migration.version, migration.name]
                )
                try connection.command("COMMIT")
            } catch {
                if !connection.isBroken { _ = try? connection.command("ROLLBACK") }
                throw error
            }
            newlyApplied.append(migration.version)
        }
        return newlyApplied
    }

    /// Versions recorded in `schema_migrations`, ascending; `[]` when the table does not exist.
    public static func appliedVersions(_ connection: PostgresConnection) throws -> [Int] {
        let exists = try connection.query("SELECT to_regclass('schema_migrations') IS NOT NULL AS present")
        guard let row = exists.first, try row.decode("present", as: Bool.self) else { return [] }
        return try connection.query("SELECT version FROM schema_migrations ORDER BY version")
            .map { try $0.decode("version", as: Int.self) }
    }
}
