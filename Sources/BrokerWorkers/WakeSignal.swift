import Synchronization

/// Wakes a worker before its interval is up. Signals coalesce: any number of them
/// while the worker runs make it run once more, not once each.
public final class WakeSignal: Sendable {
    private struct State {
        var signalled = false
        var waiter: CheckedContinuation<Void, Never>?
        /// Tells a wait's timer whether the wait it was made for is still the current one.
        var generation: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    public func signal() {
        state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.signalled = true
                return nil
            }
            state.waiter = nil
            return waiter
        }?.resume()
    }

    /// Returns after a signal (one that came since the last wait included), after
    /// `timeout`, or when the task is cancelled. One waiter at a time.
    func wait(upTo timeout: Duration) async {
        var timer: Task<Void, Never>?
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let generation = state.withLock { state -> UInt64? in
                    if state.signalled || Task.isCancelled {
                        state.signalled = false
                        return nil
                    }
                    state.waiter = continuation
                    state.generation += 1
                    return state.generation
                }
                guard let generation else { return continuation.resume() }
                timer = Task { [self] in
                    try? await Task.sleep(for: timeout)
                    state.withLock { state -> CheckedContinuation<Void, Never>? in
                        guard state.generation == generation, let waiter = state.waiter else { return nil }
                        state.waiter = nil
                        return waiter
                    }?.resume()
                }
            }
        } onCancel: {
            signal()
        }
        timer?.cancel()
    }
}
