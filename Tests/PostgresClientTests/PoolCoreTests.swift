@testable import PostgresClient
import Dispatch
import Synchronization
import TestHarness
import XCTest

// The pool's queueing, connection replacement, checkout timeout and close, with no
// database: connections come from a fake factory and time from a clock advanced by
// hand (as postgres-nio tests its `_ConnectionPoolModule` with MockConnectionFactory
// and MockClock). The SQL side of the pool (transactions, retries) is in PoolTests.

/// A connection the test breaks at will, from inside a job (on its worker thread).
final class FakeConnection: PoolConnection {
    let id: Int
    let factory: FakeConnectionFactory
    /// Seen by the pool's probe before the next job.
    var brokenWhileIdle = false
    /// Seen by the pool's reset right after the job.
    var brokenByJob = false

    init(id: Int, factory: FakeConnectionFactory) {
        self.id = id
        self.factory = factory
    }

    deinit { factory.closed.add(1, ordering: .relaxed) }

    func probeIdle() -> Bool { !brokenWhileIdle }
    func resetForReuse() -> Bool { !brokenByJob }
}

final class FakeConnectionFactory: Sendable {
    let opened = Atomic(0)
    let closed = Atomic(0)
    /// How many of the next attempts fail.
    let failures = Atomic(0)
    struct Refused: Error {}

    func connect() throws -> FakeConnection {
        if failures.load(ordering: .relaxed) > 0 {
            failures.subtract(1, ordering: .relaxed)
            throw Refused()
        }
        return FakeConnection(id: opened.add(1, ordering: .relaxed).newValue, factory: self)
    }
}

/// Time that moves only when the test says so.
final class ManualClock: PoolClock {
    private struct Timer {
        var due: Duration
        var action: @Sendable () -> Void
    }
    private let state = Mutex<(now: Duration, timers: [Timer])>((.zero, []))

    func schedule(after delay: Duration, _ action: @escaping @Sendable () -> Void) {
        state.withLock { $0.timers.append(Timer(due: $0.now + delay, action: action)) }
    }

    var pendingTimers: Int { state.withLock { $0.timers.count } }

    /// Moves time forward and runs the timers that came due, outside the lock.
    func advance(by duration: Duration) {
        let due = state.withLock { state -> [Timer] in
            state.now += duration
            let now = state.now
            defer { state.timers.removeAll { $0.due <= now } }
            return state.timers.filter { $0.due <= now }.sorted { $0.due < $1.due }
        }
        due.forEach { $0.action() }
    }
}

final class PoolCoreTests: XCTestCase {
    let factory = FakeConnectionFactory()
    let clock = ManualClock()

    func makePool(size: Int, checkoutTimeout: Duration = .seconds(5)) -> PoolCore<FakeConnection> {
        let factory = self.factory
        let core = PoolCore(size: size, checkoutTimeout: checkoutTimeout, clock: clock) { try factory.connect() }
        core.startWorkers(name: "test.pool")
        return core
    }

    /// Occupies a worker with a job that holds it until `release` is signalled; the job
    /// answers its connection's id.
    func occupyWorker(_ core: PoolCore<FakeConnection>) async throws -> (busy: Task<Int, any Error>, release: DispatchSemaphore) {
        let (started, release) = (Flag(), DispatchSemaphore(value: 0))
        let busy = Task {
            try await core.withConnection { connection in
                started.set()
                release.wait()
                return connection.id
            }
        }
        _ = try await waitFor("a worker to take the job") { started.isSet ? true : nil }
        return (busy, release)
    }

    /// A job queued behind busy workers arms its checkout timeout.
    func waitForCheckoutTimer() async throws {
        _ = try await waitFor("a queued job's checkout timer") { clock.pendingTimers > 0 ? true : nil }
    }

    func testConnectionsAreOpenedLazilyAndReused() async throws {
        let core = makePool(size: 2)
        XCTAssertEqual(factory.opened.load(ordering: .relaxed), 0, "nothing opened before the first job")
        var ids: Set<Int> = []
        for _ in 0..<20 { ids.insert(try await core.withConnection { $0.id }) }
        XCTAssertLessThanOrEqual(ids.count, 2)
        XCTAssertEqual(factory.opened.load(ordering: .relaxed), ids.count)
        await core.close()
        XCTAssertEqual(factory.closed.load(ordering: .relaxed), ids.count, "close drops every connection")
    }

    func testABrokenConnectionIsReplacedBeforeTheNextJob() async throws {
        let core = makePool(size: 1)
        let first = try await core.withConnection { connection in
            connection.brokenWhileIdle = true  // as if the server went away while it idled
            return connection.id
        }
        let second = try await core.withConnection { connection in
            connection.brokenByJob = true  // as if the job left it unusable
            return connection.id
        }
        let third = try await core.withConnection { $0.id }
        XCTAssertEqual([first, second, third], [1, 2, 3])
        XCTAssertEqual(factory.closed.load(ordering: .relaxed), 2)
        await core.close()
    }

    func testAFailedConnectFailsTheJobAtOnceAndTheNextOneTriesAgain() async throws {
        let core = makePool(size: 1)
        factory.failures.store(1, ordering: .relaxed)
        let ran = Atomic(false)
        do {
            _ = try await core.withConnection { _ in ran.store(true, ordering: .relaxed) }
            XCTFail("a job ran without a connection")
        } catch is FakeConnectionFactory.Refused {}
        XCTAssertFalse(ran.load(ordering: .relaxed))
        XCTAssertEqual(clock.pendingTimers, 0, "a free worker arms no checkout timeout")
        let next = try await core.withConnection { $0.id }
        XCTAssertEqual(next, 1)
        await core.close()
    }

    /// Only a job that waits for a busy pool gets a timeout, and only if it is still
    /// waiting when the timeout passes.
    func testAQueuedJobFailsWhenItsCheckoutTimeoutPasses() async throws {
        let core = makePool(size: 1, checkoutTimeout: .seconds(5))
        let (busy, release) = try await occupyWorker(core)
        XCTAssertEqual(clock.pendingTimers, 0)
        let queued = Task { try await core.withConnection { $0.id } }
        try await waitForCheckoutTimer()
        clock.advance(by: .seconds(4))
        XCTAssertEqual(clock.pendingTimers, 1, "not due yet")
        clock.advance(by: .seconds(1))
        do {
            _ = try await queued.value
            XCTFail("the queued job got a connection")
        } catch let error as PostgresError {
            XCTAssertEqual(error.kind, .checkoutTimeout)
        }
        // A job that gets the worker before its timeout passes is not failed by it.
        let late = Task { try await core.withConnection { $0.id } }
        try await waitForCheckoutTimer()
        release.signal()
        let (held, served) = (try await busy.value, try await late.value)
        XCTAssertEqual([held, served], [1, 1])
        clock.advance(by: .seconds(10))
        await core.close()
    }

    func testACancelledQueuedJobNeverRuns() async throws {
        let core = makePool(size: 1)
        let (busy, release) = try await occupyWorker(core)
        let ran = Atomic(false)
        let queued = Task { try await core.withConnection { _ in ran.store(true, ordering: .relaxed) } }
        try await waitForCheckoutTimer()
        queued.cancel()
        do {
            try await queued.value
            XCTFail("a cancelled job completed")
        } catch is CancellationError {}
        release.signal()
        _ = try await busy.value
        let next = try await core.withConnection { $0.id }
        XCTAssertEqual(next, 1)
        XCTAssertFalse(ran.load(ordering: .relaxed))
        await core.close()
    }

    func testCloseFinishesQueuedWorkAndThenRefusesNewWork() async throws {
        let core = makePool(size: 1)
        let (busy, release) = try await occupyWorker(core)
        let queued = Task { try await core.withConnection { $0.id } }
        try await waitForCheckoutTimer()
        let closing = Task { await core.close() }
        release.signal()
        await closing.value
        let (held, served) = (try await busy.value, try await queued.value)
        XCTAssertEqual([held, served], [1, 1], "work queued before close still runs")
        XCTAssertEqual(factory.closed.load(ordering: .relaxed), 1)
        do {
            _ = try await core.withConnection { $0.id }
            XCTFail("a closed pool ran a job")
        } catch let error as PostgresError {
            XCTAssertEqual(error.kind, .poolClosed)
        }
    }
}
