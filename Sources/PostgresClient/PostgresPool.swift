import CLibPQ
import Dispatch
import Foundation
import Synchronization

/// Transaction isolation level for `PostgresPool.withTransaction`.
public enum IsolationLevel: Sendable, Hashable {
    case readCommitted, repeatableRead, serializable

    var beginStatement: String {
        switch self {
        case .readCommitted: return "BEGIN ISOLATION LEVEL READ COMMITTED"
        case .repeatableRead: return "BEGIN ISOLATION LEVEL REPEATABLE READ"
        case .serializable: return "BEGIN ISOLATION LEVEL SERIALIZABLE"
        }
    }
}

/// A fixed set of connections, each owned by its own dedicated thread.
///
/// Blocking libpq calls never run on Swift's cooperative pool: `withConnection` puts the body
/// on a shared queue, one of the `size` worker threads runs it with its connection, and the
/// caller awaits the result. Connections are opened lazily and replaced when found broken, so
/// the pool recovers by itself after a server restart or failover.
public final class PostgresPool: Sendable {
    private let core: PoolCore<PostgresConnection>

    /// Number of connections (and worker threads).
    public let size: Int

    /// Starts `size` worker threads; no connection is opened until the first job.
    /// A job that waits longer than `checkoutTimeout` for a free connection fails with `.checkoutTimeout`.
    public init(configuration: PostgresConfiguration, size: Int, checkoutTimeout: Duration = .seconds(5)) {
        precondition(size > 0, "a pool needs at least one connection")
        self.size = size
        self.core = PoolCore(size: size, checkoutTimeout: checkoutTimeout, clock: DispatchPoolClock()) {
            try PostgresConnection.connect(configuration)
        }
        core.startWorkers(name: "gpubroker.postgres")
    }

    deinit {
        core.beginClose()
    }

    /// Runs `body` on a worker thread with that thread's connection and returns its result.
    ///
    /// Fails with `.checkoutTimeout` when no connection frees up in time, `.connection` when
    /// none can be opened (immediately, no waiting), `.poolClosed` after `close()`. If the
    /// body leaves a transaction open, it is rolled back before the connection is reused.
    public func withConnection<T: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) throws -> T
    ) async throws -> T {
        try await core.withConnection(body)
    }

    /// Runs `body` inside `BEGIN … COMMIT`; rolls back and rethrows when it throws.
    ///
    /// - SQLSTATE 40001/40P01 (from a statement or from `COMMIT`): the whole body runs again
    ///   after a jittered exponential backoff, at most `maxAttempts` times in all.
    /// - The connection is lost before `COMMIT` is sent: nothing committed, so the body runs
    ///   again on a fresh connection (at most 3 times).
    /// - The connection is lost during `COMMIT`: `.commitOutcomeUnknown`, never retried.
    ///
    /// The body may therefore run more than once: it must only touch the database.
    public func withTransaction<T: Sendable>(
        isolation: IsolationLevel = .readCommitted,
        maxAttempts: Int = 8,
        _ body: @escaping @Sendable (PostgresConnection) throws -> T
    ) async throws -> T {
        var attempt = 0
        var reconnects = 0
        while true {
            attempt += 1
            do {
                return try await withConnection { connection in
                    try connection.runTransaction(isolation: isolation, body)
                }
            } catch let lost as TransactionNotCommitted {
                attempt -= 1
                reconnects += 1
                guard reconnects <= Self.maxReconnects else { throw lost.underlying }
                try await Task.sleep(for: Self.backoff(attempt: reconnects, base: .milliseconds(20)))
            } catch let error as PostgresError where error.kind == .connection {
                // The worker could not open a connection: the body never ran.
                attempt -= 1
                reconnects += 1
                guard reconnects <= Self.maxReconnects else { throw error }
                try await Task.sleep(for: Self.backoff(attempt: reconnects, base: .milliseconds(20)))
            } catch let error as PostgresError where error.isRetryableTransactionFailure && attempt < maxAttempts {
                try await Task.sleep(for: Self.backoff(attempt: attempt, base: .milliseconds(2)))
            }
        }
    }

    /// Runs `body` inside `BEGIN … ROLLBACK`, whatever it returns or throws: nothing it
    /// writes is committed, and its `NOTIFY`s are never delivered (PostgreSQL sends them
    /// at commit). For answering what a change would do without doing it.
    public func withRolledBackTransaction<T: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) throws -> T
    ) async throws -> T {
        try await withConnection { connection in
            try connection.command("BEGIN")
            defer { _ = try? connection.command("ROLLBACK") }
            return try body(connection)
        }
    }

    /// Waits for queued and running work, then closes every connection (`PQfinish`).
    /// Later calls fail with `.poolClosed`.
    public func close() async {
        await core.close()
    }

    static let maxReconnects = 3

    /// Exponential backoff with "equal jitter": a random delay in [d/2, d], d = base·2^(attempt-1), capped at 1 s.
    static func backoff(attempt: Int, base: Duration) -> Duration {
        let exponent = min(max(attempt - 1, 0), 16)
        let ceiling = min(base * (1 << exponent), .seconds(1))
        let half = ceiling / 2
        return half + half * Double.random(in: 0...1)
    }
}

/// Raised inside a worker when the connection died before `COMMIT` was sent.
struct TransactionNotCommitted: Error {
    let underlying: any Error
}

extension PostgresConnection {
    /// One attempt of `withTransaction` on this connection.
    func runTransaction<T>(isolation: IsolationLevel, _ body: (PostgresConnection) throws -> T) throws -> T {
        do {
            try command(isolation.beginStatement)
        } catch {
            if isBroken { throw TransactionNotCommitted(underlying: error) }
            throw error
        }
        let value: T
        do {
            value = try body(self)
        } catch {
            if isBroken { throw TransactionNotCommitted(underlying: error) }
            _ = try? command("ROLLBACK")
            throw error
        }
        let status = transactionStatus
        guard status == PQTRANS_INTRANS else {
            _ = try? command("ROLLBACK")
            if isBroken {
                throw TransactionNotCommitted(underlying: PostgresError(kind: .connection, message: "connection lost before COMMIT"))
            }
            if status == PQTRANS_INERROR {
                throw PostgresError(kind: .server, message: "a statement failed inside the transaction and its error was not rethrown; rolled back",
                                    sqlState: .inFailedSQLTransaction)
            }
            throw PostgresError(kind: .server, message: "the transaction body ended the transaction itself", sqlState: .invalidTransactionState)
        }
        let tag: String
        do {
            tag = try command("COMMIT")
        } catch let error as PostgresError {
            if isBroken {
                throw PostgresError(kind: .commitOutcomeUnknown, message: "connection lost during COMMIT: \(error.message)", sqlState: error.sqlState)
            }
            throw error
        }
        guard tag == "COMMIT" else {
            throw PostgresError(kind: .server, message: "COMMIT answered \(tag)", sqlState: .transactionRollback)
        }
        return value
    }

    /// Makes the connection ready for the next job: rolls back an open or failed transaction.
    /// Returns false when the connection must be replaced.
    func resetForReuse() -> Bool {
        if isBroken { return false }
        switch transactionStatus {
        case PQTRANS_IDLE:
            return true
        case PQTRANS_INTRANS, PQTRANS_INERROR:
            guard (try? command("ROLLBACK")) != nil else { return false }
            return !isBroken && transactionStatus == PQTRANS_IDLE
        default:
            return false
        }
    }
}
