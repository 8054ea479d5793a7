import BrokerStore
import Foundation
import Logging
import Metrics
import MicroHTTP
import Synchronization

/// Watch streams (Server-Sent Events) of the ledger feed. One loop per broker reads
/// the feed for every stream at once, every `interval`, through the shared pool: a
/// stream holds no database connection. A stream that resumes from an older event
/// (`Last-Event-ID`) is caught up by reads of its own until it reaches the loop's
/// position, then joins the rest; every stream takes exactly the events after its
/// position, so none is missed or repeated. A stream whose client does not keep up
/// gets a last `dropped` event once `HTTPStream.limit` bytes wait for it and is
/// closed; it can resume from its last event.
public final class EventHub: Sendable {
    public struct Subscription: Sendable {
        /// nil: every tenant (the admin).
        public var tenant: UUID?
        public var allocation: UUID?
        /// nil: from now on.
        public var after: FeedPosition?

        public init(tenant: UUID?, allocation: UUID?, after: FeedPosition?) {
            self.tenant = tenant
            self.allocation = allocation
            self.after = after
        }
    }

    final class Watcher: Sendable {
        let subscription: Subscription
        let stream: HTTPStream
        /// The last position this watcher was given (nil until it starts).
        let position: Mutex<FeedPosition?>

        init(_ subscription: Subscription, _ stream: HTTPStream) {
            self.subscription = subscription
            self.stream = stream
            position = Mutex(subscription.after)
        }

        func wants(_ event: FeedEvent) -> Bool {
            (subscription.tenant == nil || subscription.tenant == event.tenantId)
                && (subscription.allocation == nil || subscription.allocation == event.allocationId)
        }
    }

    struct State {
        var watchers: [ObjectIdentifier: Watcher] = [:]
        var loop: Task<Void, Never>?
        var closed = false
    }

    let feed: EventFeedStore
    let logger: Logger
    let interval: Duration
    let heartbeat: Duration
    private let state = Mutex(State())
    private let open = Gauge(label: "event_streams_open")
    private let dropped = Counter(label: "event_streams_dropped_total")

    public init(feed: EventFeedStore, logger: Logger, interval: Duration = .milliseconds(200), heartbeat: Duration = .seconds(15)) {
        self.feed = feed
        self.logger = logger
        self.interval = interval
        self.heartbeat = heartbeat
    }

    /// Starts a stream; false once the hub is closed (shutting down).
    public func watch(_ subscription: Subscription, into stream: HTTPStream) -> Bool {
        let watcher = Watcher(subscription, stream)
        stream.write(Array(": watching\nretry: 2000\n\n".utf8))
        let count = state.withLock { state -> Int? in
            if state.closed { return nil }
            state.watchers[ObjectIdentifier(watcher)] = watcher
            if state.loop == nil { state.loop = Task { await self.run() } }
            return state.watchers.count
        }
        guard let count else { return false }
        open.record(count)
        return true
    }

    /// Ends every stream with a last `shutdown` event; later watches are refused.
    public func close() async {
        let (watchers, loop) = state.withLock { state in
            state.closed = true
            defer { state.watchers = [:] }
            return (Array(state.watchers.values), state.loop)
        }
        loop?.cancel()
        await loop?.value
        for watcher in watchers { end(watcher, event: "shutdown", reason: "the broker is shutting down") }
    }

    private func run() async {
        var position: FeedPosition?
        var lastBeat = ContinuousClock.now
        while !Task.isCancelled {
            do {
                let watchers = state.withLock { Array($0.watchers.values) }
                if watchers.isEmpty {
                    // Nobody to follow the feed for: the next watcher starts from its end then.
                    position = nil
                    try? await Task.sleep(for: interval)
                    continue
                }
                if position == nil {
                    position = try await feed.horizon()
                }
                guard var reached = position else { continue }
                // Behind the loop: caught up on their own first.
                for watcher in watchers {
                    let at = watcher.position.withLock { $0 }
                    guard let at, at < reached else { continue }
                    let (events, upTo) = try await feed.read(
                        after: at, tenant: watcher.subscription.tenant, allocation: watcher.subscription.allocation, limit: 500)
                    deliver(events.filter { $0.position <= reached }, to: watcher, upTo: min(upTo, reached))
                }
                let (events, upTo) = try await feed.read(after: reached, tenant: nil, allocation: nil, limit: 2000)
                for watcher in watchers where watcher.position.withLock({ $0 == nil || $0! >= reached }) {
                    deliver(events, to: watcher, upTo: upTo)
                }
                reached = upTo
                position = reached
                if ContinuousClock.now - lastBeat >= heartbeat {
                    lastBeat = .now
                    for watcher in watchers where watcher.stream.write(Array(": heartbeat\n\n".utf8)) == .full {
                        end(watcher, event: "dropped", reason: "the client did not keep up")
                    }
                }
                forgetClosed()
            } catch {
                logger.warning("event feed read failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// Writes the events after the watcher's position, then moves it to `upTo`.
    private func deliver(_ events: [FeedEvent], to watcher: Watcher, upTo: FeedPosition) {
        let after = watcher.position.withLock { $0 }
        for event in events where watcher.wants(event) && (after == nil || event.position > after!) {
            let frame = "id: \(event.position)\nevent: \(event.type)\ndata: \(event.json)\n\n"
            switch watcher.stream.write(Array(frame.utf8)) {
            case .written:
                watcher.position.withLock { $0 = event.position }
            case .full:
                end(watcher, event: "dropped", reason: "the client did not keep up; resume with Last-Event-ID")
                return
            case .closed:
                return
            }
        }
        watcher.position.withLock { $0 = max($0 ?? upTo, upTo) }
    }

    private func end(_ watcher: Watcher, event: String, reason: String) {
        if event == "dropped" { dropped.increment() }
        // Its id is where to resume: every event up to it was written before.
        let id = watcher.position.withLock { $0 }.map { "id: \($0)\n" } ?? ""
        watcher.stream.write(Array("\(id)event: \(event)\ndata: {\"reason\": \"\(reason)\"}\n\n".utf8), force: true)
        watcher.stream.finish()
    }

    private func forgetClosed() {
        let count = state.withLock { state -> Int in
            state.watchers = state.watchers.filter { !$0.value.stream.isClosed }
            return state.watchers.count
        }
        open.record(count)
    }
}
