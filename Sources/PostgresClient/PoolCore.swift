import Dispatch
import Foundation
import Synchronization

/// What the pool asks of a connection. `PostgresConnection` in production; a fake in
/// the pool's unit tests, which need no database. A connection is used by one worker
/// thread at a time, so it need not be `Sendable` (its type is: jobs name it).
protocol PoolConnection: AnyObject, SendableMetatype {
    /// Before a job: false when the connection is known to be broken (replace it).
    func probeIdle() -> Bool
    /// After a job: rolls back what the job left open; false when it must be replaced.
    func resetForReuse() -> Bool
}

extension PostgresConnection: PoolConnection {}

/// The pool's one use of time: failing a queued job when its checkout timeout passes.
/// A test passes a clock it advances by hand.
protocol PoolClock: Sendable {
    func schedule(after delay: Duration, _ action: @escaping @Sendable () -> Void)
}

/// Wall-clock time on a global dispatch queue.
struct DispatchPoolClock: PoolClock {
    func schedule(after delay: Duration, _ action: @escaping @Sendable () -> Void) {
        let (seconds, attoseconds) = delay.components
        DispatchQueue.global().asyncAfter(deadline: .now() + Double(seconds) + Double(attoseconds) / 1e18, execute: action)
    }
}

/// The pool's shared state and its worker threads' loop. Separate from `PostgresPool` so the
/// threads do not keep the pool alive: dropping the pool closes it.
final class PoolCore<Connection: PoolConnection>: Sendable {
    struct Job: Sendable {
        let id: UInt64
        /// Runs the body and resumes the caller.
        let run: @Sendable (Connection) -> Void
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

    let size: Int
    let checkoutTimeout: Duration
    let clock: any PoolClock
    /// Opens a connection; called on a worker thread, lazily, and again after a break.
    let connect: @Sendable () throws -> Connection
    let state: Mutex<State>
    /// Signalled once per enqueued job and once per worker at close.
    let wakeups = DispatchSemaphore(value: 0)

    init(
        size: Int, checkoutTimeout: Duration, clock: any PoolClock,
        connect: @escaping @Sendable () throws -> Connection
    ) {
        self.size = size
        self.checkoutTimeout = checkoutTimeout
        self.clock = clock
        self.connect = connect
        self.state = Mutex(State(idleWorkers: size, liveWorkers: size))
    }

    /// Starts the `size` worker threads. They hold the core, not the pool: dropping
    /// the pool closes the core and the threads end.
    func startWorkers(name: String) {
        for index in 0..<size {
            let thread = Thread { [self] in runWorker() }
            thread.name = "\(name).\(index)"
            thread.stackSize = 4 << 20
            thread.start()
        }
    }

    /// `PostgresPool.withConnection`: queues `body` and awaits its result.
    func withConnection<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        let id = makeJobID()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                enqueue(Job(
                    id: id,
                    run: { connection in continuation.resume(with: Result { try body(connection) }) },
                    fail: { error in continuation.resume(throwing: error) }
                ))
            }
        } onCancel: {
            cancelQueued(id)
        }
    }

    func makeJobID() -> UInt64 {
        state.withLock { state in
            state.nextJobID += 1
            return state.nextJobID
        }
    }

    private enum EnqueueOutcome { case closed, ready, waiting }

    func enqueue(_ job: Job) {
        let outcome: EnqueueOutcome = state.withLock { state in
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
            let id = job.id
            clock.schedule(after: checkoutTimeout) { [self] in
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

    private enum WorkerStep { case job(Job), spurious, exit }

    /// The loop of one worker thread. The connection is a local of this thread and is
    /// never touched by another.
    func runWorker() {
        var connection: Connection?
        while true {
            wakeups.wait()
            let next: WorkerStep = state.withLock { state in
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

    private func execute(_ job: Job, on connection: inout Connection?) {
        if let existing = connection, !existing.probeIdle() {
            connection = nil
        }
        if connection == nil {
            do {
                connection = try connect()
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
