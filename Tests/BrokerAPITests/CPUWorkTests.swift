import Foundation
import Synchronization
import XCTest

@testable import BrokerAPI

/// Issue 17 item 1: CPU-heavy request work runs on threads of its own, so the cooperative
/// pool, which every async route needs, stays free; work that waited past its deadline is
/// answered 503 without being run.
final class CPUWorkTests: XCTestCase {
    func testWorkLeavesTheCooperativePoolFree() async throws {
        let work = CPUWork(queues: 4)
        // Eight pieces of half a second each: far more than the pool has threads (one per core).
        let started = ContinuousClock.now
        async let busy: Void = withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 { group.addTask { try await work.run { _ in Thread.sleep(forTimeInterval: 0.5) } } }
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
        let work = CPUWork(queues: 1)
        let ran = Flag()
        async let first: Void = work.run { _ in Thread.sleep(forTimeInterval: CPUWork.deadline.seconds + 0.2) }
        try await Task.sleep(for: .milliseconds(50))
        do {
            try await work.run { _ in ran.set() }
            XCTFail("ran after its deadline")
        } catch let problem as Problem {
            XCTAssertEqual(problem.status, 503)
        }
        try await first
        XCTAssertFalse(ran.value.withLock { $0 })
    }
}

private final class Flag: Sendable {
    let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
