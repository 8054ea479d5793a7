import Dispatch
import Foundation
import Synchronization

/// CPU-heavy request work (reading and writing manifests) on threads of its own, never on
/// Swift's cooperative pool: the pool has one thread per core, and every async route needs
/// it free. A few workers take the work:
/// - **fair between tenants**: each tenant's work waits in a line of its own and the
///   workers serve the lines in turn, so one tenant's heavy manifests wait behind its
///   own, not everyone's;
/// - **nothing waits after a commit**: work `afterCommit` (writing the answer of a grant
///   that is already made) runs at once on a thread of its own, never queued nor refused
///   (there is at most one such piece per manifest that was read, so they are few); any
///   other work that waited longer than its deadline is answered 503 without being run
///   (nothing was done yet, a retry is safe), and is given what is left of the deadline
///   to check as it goes.
final class CPUWork: Sendable {
    /// Time a request may spend waiting for a worker and working, together.
    static let deadline = Duration.seconds(2)

    private struct Job {
        var deadline: ContinuousClock.Instant
        var run: @Sendable () -> Void
        var refuse: @Sendable () -> Void
    }

    private struct State {
        var lines: [String: [Job]] = [:]
        /// Tenants with waiting work, in the order they are served.
        var turns: [String] = []
        var idleWorkers: [DispatchQueue]

        mutating func next() -> Job? {
            guard !turns.isEmpty else { return nil }
            let tenant = turns.removeFirst()
            var line = lines[tenant]!
            let job = line.removeFirst()
            if line.isEmpty {
                lines[tenant] = nil
            } else {
                lines[tenant] = line
                turns.append(tenant)
            }
            return job
        }
    }

    private let state: Mutex<State>

    init(workers count: Int = max(1, ProcessInfo.processInfo.activeProcessorCount / 2)) {
        state = Mutex(State(idleWorkers: (0..<count).map { DispatchQueue(label: "gpubroker.cpu-work.\($0)", qos: .userInitiated) }))
    }

    static let shared = CPUWork()

    /// Runs `body` on a worker, in `tenant`'s turn, and awaits its result; `body` gets the
    /// deadline. `afterCommit`: at once, however busy the workers are.
    func run<T: Sendable>(
        tenant: String, afterCommit: Bool = false, _ body: @escaping @Sendable (ContinuousClock.Instant) throws -> T
    ) async throws -> T {
        let deadline = ContinuousClock.now.advanced(by: Self.deadline)
        return try await withCheckedThrowingContinuation { continuation in
            if afterCommit {
                DispatchQueue.global(qos: .userInitiated).async { continuation.resume(with: Result { try body(deadline) }) }
                return
            }
            let job = Job(
                deadline: deadline,
                run: { continuation.resume(with: Result { try body(deadline) }) },
                refuse: {
                    continuation.resume(throwing: Problem.unavailable("the broker is busy reading manifests; retry shortly"))
                })
            let worker = state.withLock { state -> DispatchQueue? in
                if state.lines[tenant] == nil { state.turns.append(tenant) }
                state.lines[tenant, default: []].append(job)
                return state.idleWorkers.popLast()
            }
            if let worker { worker.async { self.work(on: worker) } }
        }
    }

    /// A worker's loop: jobs until none waits, then it is idle again.
    private func work(on worker: DispatchQueue) {
        while let job = state.withLock({ state -> Job? in
            guard let job = state.next() else {
                state.idleWorkers.append(worker)
                return nil
            }
            return job
        }) {
            if ContinuousClock.now >= job.deadline {
                job.refuse()
            } else {
                job.run()
            }
        }
    }
}
