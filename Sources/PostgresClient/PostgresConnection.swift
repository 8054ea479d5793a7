import CLibPQ
import Foundation

/// One libpq connection (`PGconn`).
///
/// Not `Sendable`: libpq forbids two threads on one `PGconn`, so a connection stays on the
/// thread that uses it (`PostgresPool` gives each one its own thread). Every call blocks.
public final class PostgresConnection {
    /// The `PGconn*`; owned: freed with `PQfinish` in `deinit`, never handed out.
    let handle: OpaquePointer
    /// SQL text → name of the statement prepared for it on this connection.
    private var preparedStatements: [String: String] = [:]
    /// Set when an error says the session is unusable even though `PQstatus` is still OK
    /// (e.g. 25006 on a standby after failover): the pool then replaces the connection.
    private var discardRequested = false

    private init(handle: OpaquePointer) {
        self.handle = handle
    }

    deinit {
        PQfinish(handle)
    }

    /// The connection's socket (`PQsocket`), for polling and for reading its options.
    var socket: Int32 { PQsocket(handle) }

    /// An integer socket option of the connection (`getsockopt`); nil when unreadable.
    func socketOption(_ level: Int32, _ name: Int32) -> Int32? {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(socket, level, name, &value, &length) == 0 ? value : nil
    }

    /// Opens a connection with `PQconnectdbParams`; throws `.connection` on failure.
    public static func connect(_ configuration: PostgresConfiguration) throws -> PostgresConnection {
        let (keywords, values, expand) = configuration.libpqParameters
        let pointer = withCStringArray(keywords) { keywordPointers in
            withCStringArray(values) { valuePointers in
                PQconnectdbParams(keywordPointers, valuePointers, expand ? 1 : 0)
            }
        }
        guard let pointer else {
            throw PostgresError(kind: .connection, message: "PQconnectdbParams returned NULL (out of memory)")
        }
        // From here on `deinit` calls PQfinish, also when the connection failed.
        let connection = PostgresConnection(handle: pointer)
        guard PQstatus(pointer) == CONNECTION_OK else {
            throw PostgresError(kind: .connection, message: connection.libpqErrorMessage)
        }
        // libpq prints notices ("relation already exists, skipping") to stderr by default.
        PQsetNoticeProcessor(pointer, { _, _ in }, nil)
        return connection
    }

    /// `PQstatus` is `CONNECTION_OK` and `PQtransactionStatus` is not `PQTRANS_INERROR`
    /// (nor unknown), and no error has marked the session unusable.
    public var isHealthy: Bool {
        guard !discardRequested, PQstatus(handle) == CONNECTION_OK else { return false }
        let status = PQtransactionStatus(handle)
        return status != PQTRANS_INERROR && status != PQTRANS_UNKNOWN
    }

    /// True when this connection must not be used again (`PQstatus` is bad, or an error
    /// reported a session-level problem such as 57P01 or 25006).
    var isBroken: Bool {
        discardRequested || PQstatus(handle) != CONNECTION_OK
    }

    /// `PQtransactionStatus`: idle, in a transaction, or in a failed transaction.
    var transactionStatus: PGTransactionStatusType { PQtransactionStatus(handle) }

    /// Reads whatever the server sent while the connection was idle (`PQconsumeInput`, which
    /// does not block). A server that shut down or restarted has closed the socket; this
    /// notices it before a statement is sent. Returns false when the connection is unusable.
    func probeIdle() -> Bool {
        guard !isBroken else { return false }
        if PQconsumeInput(handle) == 0 { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    /// Runs one statement with `$1…$n` text-format parameters. The first use of each distinct
    /// SQL text prepares it (`PQprepare`) on this connection; every call then runs
    /// `PQexecPrepared`: one round trip.
    @discardableResult
    public func query(_ sql: String, _ binds: [any PostgresEncodable] = []) throws -> PostgresResult {
        let name = try preparedStatementName(for: sql)
        var buffer: [UInt8] = []
        var offsets: [Int?] = []
        offsets.reserveCapacity(binds.count)
        for bind in binds {
            if let text = bind.postgresText {
                offsets.append(buffer.count)
                buffer.append(contentsOf: text.utf8)
                buffer.append(0)
            } else {
                offsets.append(nil)
            }
        }
        if buffer.isEmpty { buffer.append(0) }
        let result = buffer.withUnsafeBufferPointer { bytes -> OpaquePointer? in
            let base = UnsafeRawPointer(bytes.baseAddress!)
            let pointers: [UnsafePointer<CChar>?] = offsets.map { offset in
                offset.map { (base + $0).assumingMemoryBound(to: CChar.self) }
            }
            return PQexecPrepared(handle, name, Int32(binds.count), pointers, nil, nil, 0)
        }
        defer { PQclear(result) }
        try check(result)
        return PostgresResult(copying: result!)
    }

    /// Runs one or more statements separated by semicolons with `PQexec` (no parameters):
    /// for migrations and session commands. Several statements run in one implicit
    /// transaction unless the script has its own `BEGIN`/`COMMIT`.
    public func executeScript(_ sql: String) throws {
        let result = PQexec(handle, sql)
        defer { PQclear(result) }
        try check(result)
    }

    /// Runs a parameterless command with `PQexec` and returns its command tag (`PQcmdStatus`).
    @discardableResult
    func command(_ sql: String) throws -> String {
        let result = PQexec(handle, sql)
        defer { PQclear(result) }
        try check(result)
        return PQcmdStatus(result).map { String(cString: $0) } ?? ""
    }

    /// Number of statements prepared on this connection.
    public var preparedStatementCount: Int { preparedStatements.count }

    private func preparedStatementName(for sql: String) throws -> String {
        if let name = preparedStatements[sql] { return name }
        let name = "gpb_\(preparedStatements.count + 1)"
        let result = PQprepare(handle, name, sql, 0, nil)
        defer { PQclear(result) }
        try check(result)
        preparedStatements[sql] = name
        return name
    }

    /// Throws unless `result` is `PGRES_COMMAND_OK` or `PGRES_TUPLES_OK`; the error's fields
    /// come from `PQresultErrorField`.
    private func check(_ result: OpaquePointer?) throws {
        guard let result else {
            throw failure(sqlState: nil, message: libpqErrorMessage, detail: nil, constraint: nil)
        }
        let status = PQresultStatus(result)
        if status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY {
            return
        }
        func field(_ code: Int32) -> String? {
            PQresultErrorField(result, code).map { String(cString: $0) }
        }
        let message = field(gpb_PG_DIAG_MESSAGE_PRIMARY)
            ?? PQresultErrorMessage(result).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
            ?? libpqErrorMessage
        throw failure(
            sqlState: field(gpb_PG_DIAG_SQLSTATE).map(SQLState.init(rawValue:)),
            message: message.trimmingCharacters(in: .whitespacesAndNewlines),
            detail: field(gpb_PG_DIAG_MESSAGE_DETAIL),
            constraint: field(gpb_PG_DIAG_CONSTRAINT_NAME)
        )
    }

    private func failure(sqlState: SQLState?, message: String, detail: String?, constraint: String?) -> PostgresError {
        if sqlState?.isConnectionProblem == true { discardRequested = true }
        let kind: PostgresError.Kind = PQstatus(handle) == CONNECTION_OK && sqlState != nil ? .server : .connection
        return PostgresError(kind: kind, message: message, sqlState: sqlState, detail: detail, constraint: constraint)
    }

    /// `PQerrorMessage`, trimmed.
    private var libpqErrorMessage: String {
        let text = PQerrorMessage(handle).map { String(cString: $0) } ?? ""
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? "unknown libpq error" : trimmed
    }
}

/// Calls `body` with a NULL-terminated array of C strings that live only for the call.
private func withCStringArray<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    return body(copies.map { UnsafePointer($0) } + [nil])
}
