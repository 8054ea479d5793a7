/// An error from libpq, the server, decoding, or the pool.
///
/// `description` is short and carries no values from the data (safe to log);
/// `debugDescription` has the server's message and detail, which may contain values.
public struct PostgresError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// The server answered a statement with an error (see `sqlState`).
        case server
        /// No connection could be made, or it was lost.
        case connection
        /// No pooled connection became free within the pool's checkout timeout.
        case checkoutTimeout
        /// A value could not be decoded into the requested Swift type, or a column is missing or NULL.
        case decoding
        /// The connection was lost while `COMMIT` was in flight: the transaction may or may not have committed.
        case commitOutcomeUnknown
        /// The pool was closed.
        case poolClosed
    }

    public var kind: Kind
    public var sqlState: SQLState?
    public var message: String
    public var detail: String?
    public var constraint: String?

    public init(kind: Kind, message: String, sqlState: SQLState? = nil, detail: String? = nil, constraint: String? = nil) {
        self.kind = kind
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.constraint = constraint
    }

    /// True when another connection (or the same one later) may succeed: `.connection`,
    /// `.checkoutTimeout`, `.commitOutcomeUnknown`, and SQLSTATE class 08, 57P01…57P03 and 25006
    /// (a standby after failover). The API maps these to 503.
    public var isConnectionProblem: Bool {
        switch kind {
        case .connection, .checkoutTimeout, .commitOutcomeUnknown:
            return true
        case .server, .decoding, .poolClosed:
            return sqlState?.isConnectionProblem ?? false
        }
    }

    /// 40001 or 40P01: rerunning the whole transaction may succeed.
    public var isRetryableTransactionFailure: Bool {
        sqlState?.isRetryableTransactionFailure ?? false
    }

    public var description: String {
        var text = "PostgresError.\(kind)"
        if let sqlState { text += " (SQLSTATE \(sqlState.rawValue))" }
        if let constraint { text += " constraint \(constraint)" }
        return text
    }

    public var debugDescription: String {
        var text = "PostgresError.\(kind)"
        if let sqlState { text += " SQLSTATE \(sqlState.rawValue)" }
        text += ": \(message)"
        if let detail { text += " DETAIL: \(detail)" }
        if let constraint { text += " CONSTRAINT: \(constraint)" }
        return text
    }

    static func decoding(_ message: String) -> PostgresError {
        PostgresError(kind: .decoding, message: message)
    }
}
