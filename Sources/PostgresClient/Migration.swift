/// One numbered schema change: tables, indexes, constraints, data moves. Its version is
/// its place in the one order every database follows.
public struct Migration: Sendable, Hashable {
    public let version: Int
    public let name: String
    public let sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// False for a file of comments only (a version whose objects all moved to definitions),
    /// which PostgreSQL would answer as an empty query.
    var changesSomething: Bool {
        sql.split(separator: "\n").contains { line in
            let trimmed = line.drop { $0 == " " }
            return !trimmed.isEmpty && !trimmed.hasPrefix("--")
        }
    }
}

/// Code that lives in the database (functions, triggers, types) in its current form: one
/// file per concern, applied after the numbered migrations whenever a file changed.
public struct Definitions: Sendable {
    /// Applied in this order; each creates its objects from nothing.
    public var files: [(name: String, sql: String)]
    /// Removes every object the files create (and what older versions of them created),
    /// so that the files then leave exactly their own objects behind.
    public var dropAll: String

    public init(files: [(name: String, sql: String)], dropAll: String) {
        self.files = files
        self.dropAll = dropAll
    }

    public static let none = Definitions(files: [], dropAll: "")
}

/// The order of migrations a database may have: the known list's versions ascending,
/// where versions up to `legacyThrough` (numbered per branch before the rule, merged out
/// of order) may have been applied with gaps; they are filled in in version order.
public struct MigrationOrder: Sendable {
    public var migrations: [Migration]
    public var legacyThrough: Int

    public init(_ migrations: [Migration], legacyThrough: Int = 0) {
        self.migrations = migrations.sorted { $0.version < $1.version }
        self.legacyThrough = legacyThrough
    }

    /// Why a database with `applied` versions cannot be migrated, or nil.
    public func problem(applied: [Int]) -> String? {
        let known = migrations.map(\.version)
        let unknown = Set(applied).subtracting(known).sorted()
        if !unknown.isEmpty {
            return "the database has migrations \(list(unknown)) that this gpubroker does not know (a newer or another branch's build migrated it)"
        }
        let numbered = known.filter { $0 > legacyThrough }
        let appliedNumbered = applied.filter { $0 > legacyThrough }.sorted()
        guard !appliedNumbered.isEmpty else { return nil }
        let missingLegacy = Set(known.filter { $0 <= legacyThrough }).subtracting(applied).sorted()
        let expected = Array(numbered.prefix(appliedNumbered.count))
        if appliedNumbered != expected || !missingLegacy.isEmpty {
            let missing = Set(known.prefix { $0 <= appliedNumbered.last! }).subtracting(applied).sorted()
            return "the database's migrations are not a prefix of the known order: \(list(missing)) missing before \(appliedNumbered.last!); it was migrated in another order and cannot be upgraded in place"
        }
        return nil
    }

    private func list(_ versions: [Int]) -> String { versions.map(String.init).joined(separator: ", ") }
}

public struct MigrationOrderError: Error, CustomStringConvertible {
    public var description: String
}

/// Applies migrations, recording them in `schema_migrations` and the definitions' checksums
/// in `schema_definitions` (in the first schema of the connection's `search_path`).
public enum MigrationRunner {
    /// The `pg_advisory_lock` key every migrator takes, so brokers starting together take turns.
    public static let advisoryLockKey: Int64 = 0x6770_6272_6F6B_6572  // "gpbroker"

    /// Brings the database to the head of `order` with `definitions` current, under a
    /// session-level `pg_advisory_lock` so that concurrent migrators serialise. Nothing
    /// runs when no migration is pending and every definition file's checksum is the one
    /// recorded. Otherwise one transaction drops the definitions, applies the pending
    /// migrations in version order (so a migration never runs with triggers of another
    /// version), applies every definition file and records them all. Returns the versions
    /// applied. Refuses (`MigrationOrderError`) a database whose versions are out of order.
    ///
    /// The connection must not be inside a transaction. SQL runs with `PQexec` and must not
    /// contain its own `BEGIN`/`COMMIT` (nor `CREATE INDEX CONCURRENTLY`).
    public static func migrate(
        _ connection: PostgresConnection, _ order: MigrationOrder, definitions: Definitions = .none
    ) throws -> [Int] {
        try migrateReporting(connection, order, definitions: definitions).versions
    }

    /// What a `migrate` did: the migrations applied and the definition files whose text was
    /// not the one recorded (every file is applied again when one changed; these say why).
    public struct Outcome: Sendable, Equatable {
        public var versions: [Int]
        public var changedDefinitions: [String]
        public var changedNothing: Bool { versions.isEmpty && changedDefinitions.isEmpty }
    }

    /// `migrate`, saying which definition files it found changed as well.
    public static func migrateReporting(
        _ connection: PostgresConnection, _ order: MigrationOrder, definitions: Definitions = .none
    ) throws -> Outcome {
        let sorted = order.migrations
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
            );
            CREATE TABLE IF NOT EXISTS schema_definitions (
                name text PRIMARY KEY,
                sha256 text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """)
        let applied = try appliedVersions(connection)
        if let problem = order.problem(applied: applied) { throw MigrationOrderError(description: problem) }
        let pending = sorted.filter { !applied.contains($0.version) }
        let changed = try changedDefinitions(connection, definitions)
        if pending.isEmpty, changed.isEmpty { return Outcome(versions: [], changedDefinitions: []) }
        try connection.command("BEGIN")
        do {
            if !definitions.dropAll.isEmpty { try connection.executeScript(definitions.dropAll) }
            for migration in pending {
                if migration.changesSomething { try connection.executeScript(migration.sql) }
                try connection.query(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [migration.version, migration.name])
            }
            try connection.query("DELETE FROM schema_definitions")
            for file in definitions.files {
                try connection.executeScript(file.sql)
                try connection.query(
                    "INSERT INTO schema_definitions (name, sha256) VALUES ($1, encode(sha256(convert_to($2, 'UTF8')), 'hex'))",
                    [file.name, file.sql])
            }
            try connection.command("COMMIT")
        } catch {
            if !connection.isBroken { _ = try? connection.command("ROLLBACK") }
            throw error
        }
        return Outcome(versions: pending.map(\.version), changedDefinitions: changed)
    }

    /// `migrate` with the strict order of `migrations` and no definitions.
    public static func migrate(_ connection: PostgresConnection, _ migrations: [Migration]) throws -> [Int] {
        try migrate(connection, MigrationOrder(migrations))
    }

    /// The files of `definitions` whose text is not the one `schema_definitions` records,
    /// and the recorded files no longer among them, by name; empty when all are current.
    static func changedDefinitions(_ connection: PostgresConnection, _ definitions: Definitions) throws -> [String] {
        try connection.query(
            """
            SELECT coalesce(f.name, d.name) AS name
            FROM unnest($1::text[], $2::text[]) AS f (name, sql)
            FULL JOIN schema_definitions d ON d.name = f.name
            WHERE d.sha256 IS DISTINCT FROM encode(sha256(convert_to(f.sql, 'UTF8')), 'hex')
            ORDER BY 1
            """,
            [definitions.files.map(\.name), definitions.files.map(\.sql)]
        ).map { try $0.decode("name", as: String.self) }
    }

    /// Versions recorded in `schema_migrations`, ascending; `[]` when the table does not exist.
    public static func appliedVersions(_ connection: PostgresConnection) throws -> [Int] {
        let exists = try connection.query("SELECT to_regclass('schema_migrations') IS NOT NULL AS present")
        guard let row = exists.first, try row.decode("present", as: Bool.self) else { return [] }
        return try connection.query("SELECT version FROM schema_migrations ORDER BY version")
            .map { try $0.decode("version", as: Int.self) }
    }
}
