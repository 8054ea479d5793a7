import PostgresClient

/// The database's admin credential (migration 15): the SHA-256 of the admin token that
/// brokers without a configured one accept.
public struct AdminCredentialStore: Sendable {
    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    /// Stores `token`'s hash unless the database already holds one, and returns the hash
    /// held (hex): `token`'s when it was first or is the same, another broker's otherwise.
    public func establish(token: String) async throws -> String {
        try await StoreError.translating {
            try await pool.withConnection { c in
                // Empty only when another broker inserted concurrently, after this
                // statement's snapshot: the next statement sees its row.
                while true {
                    let rows = try c.query(
                        """
                        WITH offered AS (
                            INSERT INTO admin_credential (token_sha256) VALUES (sha256(convert_to($1, 'UTF8')))
                            ON CONFLICT (only_row) DO NOTHING RETURNING token_sha256)
                        SELECT encode(token_sha256, 'hex') AS hash FROM offered
                        UNION ALL SELECT encode(token_sha256, 'hex') FROM admin_credential
                        """,
                        [token])
                    if let row = rows.first { return try row.decode("hash", as: String.self) }
                }
            }
        }
    }
}
