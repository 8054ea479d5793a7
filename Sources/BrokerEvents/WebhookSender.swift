import BrokerStore
import Foundation
import Logging
import Metrics
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Sends webhook deliveries: every broker runs one. Each round turns newly final
/// ledger events into deliveries (`WebhookStore.dispatch`), claims the due ones and
/// posts them concurrently. A failed attempt is retried with exponential backoff and
/// jitter (1 s doubling up to an hour) until the delivery is `retryWindow` old; then
/// it fails and its endpoint is marked failing.
public struct WebhookSender: Sendable {
    let store: WebhookStore
    let policy: WebhookURLPolicy
    let logger: Logger
    let retryWindow: Duration
    let concurrency: Int
    let session: URLSession

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

    /// Runs until the task is cancelled.
    public func run() async {
        let sent = Counter(label: "webhook_attempts_total", dimensions: [("outcome", "delivered")])
        let failed = Counter(label: "webhook_attempts_total", dimensions: [("outcome", "failed")])
        while !Task.isCancelled {
            do {
                _ = try await store.dispatch()
                let claimed = try await store.claim(limit: concurrency)
                if claimed.isEmpty {
                    try? await Task.sleep(for: .milliseconds(200))
                    continue
                }
                await withTaskGroup(of: Bool.self) { group in
                    for delivery in claimed { group.addTask { await self.attempt(delivery) } }
                    for await ok in group { (ok ? sent : failed).increment() }
                }
            } catch {
                logger.warning("webhook round failed", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// One attempt; true when delivered.
    func attempt(_ delivery: ClaimedDelivery) async -> Bool {
        var status: Int?
        var problem: String
        if let refusal = await policy.refusal(delivery.url, resolving: true) {
            problem = "url refused: \(refusal)"
        } else if let url = URL(string: delivery.url) {
            var request = URLRequest(url: url)
            request.httpMethod = "POST"
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
        do {
            if let status, (200..<300).contains(status) {
                try await store.delivered(delivery.id, status: status)
                return true
            }
            let retryIn = delivery.age >= retryWindow ? nil : Self.backoff(attempts: delivery.attempts)
            if retryIn == nil {
                logger.notice("webhook delivery failed for good", metadata: ["delivery": "\(delivery.id)", "error": "\(problem)"])
            }
            try await store.attemptFailed(delivery.id, status: status, reason: String(problem.prefix(500)), retryIn: retryIn)
        } catch {
            // The claim runs out in a minute and another round tries again.
            logger.warning("webhook outcome not recorded", metadata: ["delivery": "\(delivery.id)", "error": "\(error)"])
        }
        return false
    }

    /// Sends with a deadline of its own: under load, FoundationNetworking's URLSession
    /// was seen never to complete some tasks (its own timeout did not fire either), which
    /// held up every later delivery and the broker's shutdown. Whichever comes first, the
    /// answer or the deadline, resumes; the other finds the continuation taken.
    func post(_ request: URLRequest) async -> (status: Int?, problem: String) {
        await withCheckedContinuation { (continuation: CheckedContinuation<(status: Int?, problem: String), Never>) in
            let once = Mutex<CheckedContinuation<(status: Int?, problem: String), Never>?>(continuation)
            @Sendable func finish(_ status: Int?, _ problem: String) {
                once.withLock { taken in defer { taken = nil }; return taken }?.resume(returning: (status, problem))
            }
            let task = session.dataTask(with: request) { _, response, error in
                let status = (response as? HTTPURLResponse)?.statusCode
                finish(status, error.map { "no answer: \($0.localizedDescription)" } ?? "answered \(status.map(String.init) ?? "without a status")")
            }
            task.resume()
            DispatchQueue.global().asyncAfter(deadline: .now() + Self.attemptDeadline) {
                task.cancel()
                finish(nil, "no answer within \(Int(Self.attemptDeadline)) s")
            }
        }
    }

    static let attemptDeadline: Double = 20

    /// 1 s doubling per attempt, at most an hour, with "equal jitter" (half fixed, half random).
    static func backoff(attempts: Int) -> Duration {
        let ceiling = min(pow(2, Double(min(max(attempts - 1, 0), 20))), 3600)
        return .milliseconds(Int64(ceiling * 500 * (1 + Double.random(in: 0...1))))
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
