import Foundation
import Synchronization
import XCTest

@testable import BrokerAPI

/// Issue 17 item 1: CPU-heavy request work runs on threads of its own, so the cooperative
/// pool, which every async route needs, stays free; work that waited past its deadline is
/// answered 503 without being run.
final class CPUWorkTests: XCTestCase {
    func testWorkLeavesTheCooperativePoolFree() async throws {
        let work = CPUWork(workers: 4)
        // Eight pieces of half a second each: far more than the pool has threads (one per core).
        let started = ContinuousClock.now
        async let busy: Void = withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 { group.addTask { try await work.run(tenant: "t") { _ in Thread.sleep(forTimeInterval: 0.5) } } }
            try await group.waitForAll()
        }
        // This task needs a pool thread to wake up: late only if the work holds them all.
        let asked = ContinuousClock.now
        try await Task.sleep(for: .milliseconds(100))
        let late = ContinuousClock.now - asked - .milliseconds(100)
        try await busy
        let total = ContinuousClock.now - started
        print("a pool task woke \(late) late while CPU work ran \(total)")
        XCTAssertLessThan(late, .milliseconds(250))
        XCTAssertGreaterThanOrEqual(total, .milliseconds(900))
    }

    func testWorkThatWaitedPastItsDeadlineIsNotRun() async throws {
        let work = CPUWork(workers: 1)
        let ran = Flag()
        async let first: Void = work.run(tenant: "t") { _ in Thread.sleep(forTimeInterval: CPUWork.deadline.seconds + 0.2) }
        try await Task.sleep(for: .milliseconds(50))
        do {
            try await work.run(tenant: "t") { _ in ran.set() }
            XCTFail("ran after its deadline")
        } catch let problem as Problem {
            XCTAssertEqual(problem.status, 503)
        }
        try await first
        XCTAssertFalse(ran.value.withLock { $0 })
    }

    /// Issue 31, N4: the answer of committed grants waited for the same queue as new
    /// manifests, and past 2 s the client got 503 "retry shortly" although its allocations
    /// existed; then it went first but still waited for a busy worker. Work after a commit
    /// runs at once, while the only worker is busy, and is never refused.
    func testWorkAfterACommitRunsAtOnceAndIsNeverRefused() async throws {
        let work = CPUWork(workers: 1)
        let order = Log()
        async let busy: Void = work.run(tenant: "heavy") { _ in
            Thread.sleep(forTimeInterval: CPUWork.deadline.seconds + 0.2)
            order.append("heavy work done")
        }
        try await Task.sleep(for: .milliseconds(50))
        async let waiting: Void = work.run(tenant: "other") { _ in order.append("new work") }
        try await Task.sleep(for: .milliseconds(50))
        try await work.run(tenant: "other", afterCommit: true) { _ in order.append("answer") }
        try await busy
        do {
            try await waiting
        } catch let problem as Problem {
            XCTAssertEqual(problem.status, 503, "new work past its deadline is refused")
        }
        XCTAssertEqual(order.entries.withLock { $0 }, ["answer", "heavy work done"], "the answer was written without waiting")
    }

    /// Issue 31, N4: one tenant sending heavy manifests made every other tenant's answer
    /// 503. Each tenant's work waits behind its own: another tenant's goes next.
    func testOneTenantsHeavyWorkWaitsBehindItsOwnNotEveryones() async throws {
        let work = CPUWork(workers: 1)
        let started = ContinuousClock.now
        async let heavy: Void = withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<10 {
                group.addTask { _ = try? await work.run(tenant: "heavy") { _ in Thread.sleep(forTimeInterval: 0.3) } }
            }
            try await group.waitForAll()
        }
        try await Task.sleep(for: .milliseconds(100))
        try await work.run(tenant: "light") { _ in }
        let waited = ContinuousClock.now - started
        try await heavy
        print("N4: another tenant's manifest behind 10 heavy ones of 0.3 s: done after \(waited)")
        XCTAssertLessThan(waited, .milliseconds(900), "it waited for the heavy tenant's queue")
    }
}

private final class Log: Sendable {
    let entries = Mutex<[String]>([])
    func append(_ entry: String) { entries.withLock { $0.append(entry) } }
}

private final class Flag: Sendable {
    let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
