import Dispatch
import Foundation
import Synchronization

/// CPU-heavy request work (reading and writing manifests) on threads of its own, never on
/// Swift's cooperative pool: the pool has one thread per core, and every async route needs
/// it free. The work runs on a few serial queues; a request that waits longer than its
/// deadline for one is answered 503 without being run, and the work itself is given what
/// is left of the deadline to check as it goes.
final class CPUWork: Sendable {
    /// Time a request may spend waiting for a queue and working, together.
    static let deadline = Duration.seconds(2)

    private let queues: [DispatchQueue]
    private let next = Counter()

    init(queues count: Int = max(1, ProcessInfo.processInfo.activeProcessorCount / 2)) {
        queues = (0..<count).map { DispatchQueue(label: "gpubroker.cpu-work.\($0)", qos: .userInitiated) }
    }

    static let shared = CPUWork()

    /// Runs `body` on one of the queues and awaits its result; `body` gets the deadline.
    func run<T: Sendable>(_ body: @escaping @Sendable (ContinuousClock.Instant) throws -> T) async throws -> T {
        let deadline = ContinuousClock.now.advanced(by: Self.deadline)
        let queue = queues[next.increment() % queues.count]
        return try await withCheckedThrowingContinuation { continuation in
            queue.async {
                guard ContinuousClock.now < deadline else {
                    continuation.resume(throwing: Problem.unavailable("the broker is busy reading other manifests; retry shortly"))
                    return
                }
                continuation.resume(with: Result { try body(deadline) })
            }
        }
    }
}

/// A wrapping counter shared between tasks.
private final class Counter: Sendable {
    private let value = Mutex(0)
    func increment() -> Int { value.withLock { $0 &+= 1; return $0 & Int.max } }
}
