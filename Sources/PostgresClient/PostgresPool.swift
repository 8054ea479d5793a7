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
    private let core: PoolCore

    /// Number of connections (and worker threads).
    public let size: Int

    /// Starts `size` worker threads; no connection is opened until the first job.
    /// A job that waits longer than `checkoutTimeout` for a free connection fails with `.checkoutTimeout`.
    public init(configuration: PostgresConfiguration, size: Int, checkoutTimeout: Duration = .seconds(5)) {
        precondition(size > 0, "a pool needs at least one connection")
        self.size = size
        self.core = PoolCore(configuration: configuration, size: size, checkoutTimeout: checkoutTimeout)
        for index in 0..<size {
            let thread = Thread { [core] in core.runWorker() }
            thread.name = "gpubroker.postgres.\(index)"
            thread.stackSize = 4 << 20
            thread.start()
        }
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
        let id = core.makeJobID()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                core.enqueue(PoolCore.Job(
                    id: id,
                    run: { connection in continuation.resume(with: Result { try body(connection) }) },
                    fail: { error in continuation.resume(throwing: error) }
                ))
            }
        } onCancel: {
            core.cancelQueued(id)
        }
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

/// The pool's shared state and its worker threads' loop. Separate from `PostgresPool` so the
/// threads do not keep the pool alive: dropping the pool closes it.
final class PoolCore: Sendable {
    struct Job: Sendable {
        let id: UInt64
        /// Runs the body and resumes the caller.
        let run: @Sendable (PostgresConnection) -> Void
        /// Resumes the caller with an error; the body never runs.
        let fail: @Sendable (any Error) -> Void
    }

    struct State: Sendable {
        var queue: [Job] = []
        var head = 0
        var idleWorkers: Int
        var liveWorkers: Int
        var closed = false
        var closeWaiters: [CheckedContinuation<Void, Never>] = []
        var nextJobID: UInt64 = 0

        var pendingCount: Int { queue.count - head }

        mutating func popFirst() -> Job? {
            guard head < queue.count else { return nil }
            let job = queue[head]
            head += 1
            if head > 64, head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            return job
        }

        mutating func remove(_ id: UInt64) -> Job? {
            guard let index = queue[head...].firstIndex(where: { $0.id == id }) else { return nil }
            return queue.remove(at: index)
        }
    }

    let configuration: PostgresConfiguration
    let size: Int
    let checkoutTimeout: Duration
    let state: Mutex<State>
    /// Signalled once per enqueued job and once per worker at close.
    let wakeups = DispatchSemaphore(value: 0)

    init(configuration: PostgresConfiguration, size: Int, checkoutTimeout: Duration) {
        self.configuration = configuration
        self.size = size
        self.checkoutTimeout = checkoutTimeout
        self.state = Mutex(State(idleWorkers: size, liveWorkers: size))
    }

    func makeJobID() -> UInt64 {
        state.withLock { state in
            state.nextJobID += 1
            return state.nextJobID
        }
    }

    func enqueue(_ job: Job) {
        enum Outcome { case closed, ready, waiting }
        let outcome: Outcome = state.withLock { state in
            if state.closed { return .closed }
            state.queue.append(job)
            return state.pendingCount > state.idleWorkers ? .waiting : .ready
        }
        switch outcome {
        case .closed:
            job.fail(PostgresError(kind: .poolClosed, message: "the pool is closed"))
        case .ready:
            wakeups.signal()
        case .waiting:
            wakeups.signal()
            // Every worker is busy: fail the job if it is still queued when the timeout passes.
            let (seconds, attoseconds) = checkoutTimeout.components
            let delay = Double(seconds) + Double(attoseconds) / 1e18
            let id = job.id
            DispatchQueue.global().asyncAfter(deadline: .now() + delay) { [self] in
                if let expired = state.withLock({ $0.remove(id) }) {
                    expired.fail(PostgresError(kind: .checkoutTimeout, message: "no connection became free within \(checkoutTimeout)"))
                }
            }
        }
    }

    func cancelQueued(_ id: UInt64) {
        if let job = state.withLock({ $0.remove(id) }) {
            job.fail(CancellationError())
        }
    }

    /// The loop of one worker thread. The connection is a local of this thread and is
    /// never touched by another.
    func runWorker() {
        var connection: PostgresConnection?
        while true {
            wakeups.wait()
            enum Next { case job(Job), spurious, exit }
            let next: Next = state.withLock { state in
                if let job = state.popFirst() {
                    state.idleWorkers -= 1
                    return .job(job)
                }
                return state.closed ? .exit : .spurious
            }
            switch next {
            case .spurious:
                continue
            case .exit:
                connection = nil  // PQfinish
                let waiters: [CheckedContinuation<Void, Never>] = state.withLock { state in
                    state.liveWorkers -= 1
                    guard state.liveWorkers == 0 else { return [] }
                    defer { state.closeWaiters = [] }
                    return state.closeWaiters
                }
                waiters.forEach { $0.resume() }
                return
            case .job(let job):
                execute(job, on: &connection)
                state.withLock { $0.idleWorkers += 1 }
            }
        }
    }

    private func execute(_ job: Job, on connection: inout PostgresConnection?) {
        if let existing = connection, !existing.probeIdle() {
            connection = nil
        }
        if connection == nil {
            do {
                connection = try PostgresConnection.connect(configuration)
            } catch {
                job.fail(error)
                return
            }
        }
        guard let current = connection else { return }
        job.run(current)
        if !current.resetForReuse() {
            connection = nil
        }
    }

    /// Marks the pool closed and wakes every worker; they exit once the queue is empty.
    /// Returns true the first time.
    @discardableResult
    func beginClose() -> Bool {
        let first = state.withLock { state -> Bool in
            defer { state.closed = true }
            return !state.closed
        }
        if first {
            for _ in 0..<size { wakeups.signal() }
        }
        return first
    }

    func close() async {
        beginClose()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { state -> Bool in
                if state.liveWorkers == 0 { return true }
                state.closeWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }
}
