import BrokerStore
import Foundation
import Logging
import Metrics
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Sends webhook deliveries: every broker runs one. It turns newly final ledger events
/// into deliveries (`WebhookStore.dispatch`, every `dispatchInterval`, in a loop of its
/// own) and keeps
/// up to `concurrency` attempts in flight, claiming more as soon as slots free up, so a
/// slow receiver holds one slot and not a round. A failed attempt is retried with
/// exponential backoff and jitter (1 s doubling up to an hour) until the delivery is
/// `retryWindow` old; then it fails and its endpoint is marked failing. Cancelling
/// the task cancels the requests in flight: shutdown never waits on a receiver.
public struct WebhookSender: Sendable {
    let store: WebhookStore
    let policy: WebhookURLPolicy
    let logger: Logger
    let retryWindow: Duration
    let concurrency: Int
    let session: URLSession
    static let dispatchInterval: Duration = .milliseconds(100)

    public init(
        store: WebhookStore, policy: WebhookURLPolicy, logger: Logger, concurrency: Int = 32,
        retryWindow: Duration = .seconds(24 * 3600)
    ) {
        self.store = store
        self.concurrency = concurrency
        self.policy = policy
        self.logger = logger
        self.retryWindow = retryWindow
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 15
        configuration.httpMaximumConnectionsPerHost = 8
        session = URLSession(configuration: configuration, delegate: RefuseRedirects(), delegateQueue: nil)
    }

    /// Runs until the task is cancelled, then returns once the attempts in flight were
    /// cancelled and recorded. Outcomes are recorded together once per round.
    public func run() async {
        let sent = Counter(label: "webhook_attempts_total", dimensions: [("outcome", "delivered")])
        let failed = Counter(label: "webhook_attempts_total", dimensions: [("outcome", "failed")])
        let attempts = Attempts()
        await withDiscardingTaskGroup { group in
            // Its own loop: making a large batch of deliveries must not hold up sending.
            group.addTask {
                while !Task.isCancelled {
                    do {
                        _ = try await store.dispatch()
                    } catch {
                        logger.warning("webhook dispatch failed", metadata: ["error": "\(error)"])
                    }
                    try? await Task.sleep(for: Self.dispatchInterval)
                }
            }
            while !Task.isCancelled {
                do {
                    await record(attempts.takeOutcomes())
                    let free = concurrency - attempts.inFlight.load(ordering: .relaxed)
                    let claimed = free > 0 ? try await store.claim(limit: free) : []
                    for delivery in claimed {
                        attempts.inFlight.add(1, ordering: .relaxed)
                        group.addTask {
                            let outcome = await self.attempt(delivery)
                            (outcome.delivered ? sent : failed).increment()
                            attempts.finished(outcome)
                        }
                    }
                    // Busy: back as soon as slots may have freed; idle: about when the next dispatch ran.
                    try? await Task.sleep(for: claimed.isEmpty && free > 0 ? .milliseconds(200) : .milliseconds(10))
                } catch {
                    logger.warning("webhook round failed", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
        await record(attempts.takeOutcomes())
    }

    private func record(_ outcomes: [AttemptOutcome]) async {
        do {
            try await store.record(outcomes)
        } catch {
            // Their claims run out in a minute and another round sends them again.
            logger.warning("webhook outcomes not recorded", metadata: ["deliveries": "\(outcomes.count)", "error": "\(error)"])
        }
    }

    /// One attempt and what came of it.
    func attempt(_ delivery: ClaimedDelivery) async -> AttemptOutcome {
        var status: Int?
        var problem: String
        let target = await policy.target(delivery.url)
        if case .refused(let refusal) = target {
            problem = "url refused: \(refusal)"
        } else if case .connect(let address, let host) = target, let url = URL(string: address) {
            var request = URLRequest(url: url)
            request.httpMethod = "POST"
            if let host { request.setValue(host, forHTTPHeaderField: "Host") }
            let timestamp = Int(Date().timeIntervalSince1970)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.setValue("gpubroker-webhooks/1", forHTTPHeaderField: "User-Agent")
            request.setValue(delivery.messageId, forHTTPHeaderField: "webhook-id")
            request.setValue(String(timestamp), forHTTPHeaderField: "webhook-timestamp")
            request.setValue(
                WebhookSignature.header(secrets: delivery.secrets, id: delivery.messageId, timestamp: timestamp, body: delivery.payload),
                forHTTPHeaderField: "webhook-signature")
            request.httpBody = Data(delivery.payload.utf8)
            (status, problem) = await post(request)
        } else {
            problem = "url refused: not a URL"
        }
        if let status, (200..<300).contains(status) {
            return .delivered(delivery.id, status: status)
        }
        let retryIn = delivery.age >= retryWindow ? nil : Self.backoff(attempts: delivery.attempts)
        if retryIn == nil {
            logger.notice("webhook delivery failed for good", metadata: ["delivery": "\(delivery.id)", "error": "\(problem)"])
        }
        return .failed(delivery.id, status: status, reason: String(problem.prefix(500)), retryIn: retryIn)
    }

    /// Sends with a deadline of its own: under load, FoundationNetworking's URLSession
    /// was seen never to complete some tasks (its own timeout did not fire either), which
    /// held up every later delivery and the broker's shutdown. Whichever comes first, the
    /// answer, the deadline or the cancellation of the calling task, resumes; the others
    /// find the continuation taken.
    func post(_ request: URLRequest) async -> (status: Int?, problem: String) {
        let outcome = Outcome()
        let task = session.dataTask(with: request) { _, response, error in
            let status = (response as? HTTPURLResponse)?.statusCode
            outcome.finish(status, error.map { "no answer: \($0.localizedDescription)" } ?? "answered \(status.map(String.init) ?? "without a status")")
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                guard outcome.wait(continuation) else { return }
                task.resume()
                DispatchQueue.global().asyncAfter(deadline: .now() + Self.attemptDeadline) {
                    task.cancel()
                    outcome.finish(nil, "no answer within \(Int(Self.attemptDeadline)) s")
                }
            }
        } onCancel: {
            task.cancel()
            outcome.finish(nil, "not sent: the broker is shutting down")
        }
    }

    static let attemptDeadline: Double = 20

    /// 1 s doubling per attempt, at most an hour, with "equal jitter" (half fixed, half random).
    static func backoff(attempts: Int) -> Duration {
        let ceiling = min(pow(2, Double(min(max(attempts - 1, 0), 20))), 3600)
        return .milliseconds(Int64(ceiling * 500 * (1 + Double.random(in: 0...1))))
    }
}

/// Attempts under way and the outcomes not yet recorded, shared with their tasks.
private final class Attempts: Sendable {
    let inFlight = Atomic<Int>(0)
    private let outcomes = Mutex<[AttemptOutcome]>([])

    func finished(_ outcome: AttemptOutcome) {
        outcomes.withLock { $0.append(outcome) }
        inFlight.subtract(1, ordering: .relaxed)
    }

    func takeOutcomes() -> [AttemptOutcome] {
        outcomes.withLock { taken in defer { taken = [] }; return taken }
    }
}

/// The first outcome of an attempt, from whichever of the answer, the deadline and a
/// cancellation comes first; one that comes before the caller waits is kept for it.
private final class Outcome: Sendable {
    typealias Result = (status: Int?, problem: String)
    private let state = Mutex<(waiting: CheckedContinuation<Result, Never>?, early: Result?)>((nil, nil))

    /// False when an outcome came already: the continuation was resumed with it.
    func wait(_ continuation: CheckedContinuation<Result, Never>) -> Bool {
        let early = state.withLock { state -> Result? in
            if state.early == nil { state.waiting = continuation }
            return state.early
        }
        if let early { continuation.resume(returning: early) }
        return early == nil
    }

    func finish(_ status: Int?, _ problem: String) {
        let waiting = state.withLock { state -> CheckedContinuation<Result, Never>? in
            defer { state.waiting = nil }
            if state.waiting == nil && state.early == nil { state.early = (status, problem) }
            return state.waiting
        }
        waiting?.resume(returning: (status, problem))
    }
}

/// A redirect could lead to an address the URL policy refuses: the 3xx is the answer.
/// Stateless, hence safe to share between threads.
private final class RefuseRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void
    ) {
        completionHandler(nil)
    }
}
