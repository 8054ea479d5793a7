import BrokerCore
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
    /// Time a round of the loop spends on streams catching up.
    let catchUpBudget: Duration = .milliseconds(50)
    private let state = Mutex(State())
    private let open = Gauge(label: "event_streams_open")
    private let dropped = Counter(label: "event_streams_dropped_total")

    /// Streams one tenant (the admin counts as one) may have open on this hub at once.
    let streamsPerTenant: Int

    public init(
        feed: EventFeedStore, logger: Logger, interval: Duration = .milliseconds(200), heartbeat: Duration = .seconds(15),
        streamsPerTenant: Int = ResourceLimits.Name.streamsPerTenant.defaultValue
    ) {
        self.feed = feed
        self.logger = logger
        self.interval = interval
        self.heartbeat = heartbeat
        self.streamsPerTenant = streamsPerTenant
    }

    public enum Watching: Sendable, Equatable {
        case started
        /// The hub is closed (shutting down).
        case closed
        /// The tenant has `streamsPerTenant` streams open already: nothing was written.
        case atLimit(Int)
    }

    /// Starts a stream, unless the hub is closed or the subscriber's tenant is at its limit.
    public func watch(_ subscription: Subscription, into stream: HTTPStream) -> Watching {
        let watcher = Watcher(subscription, stream)
        let outcome = state.withLock { state -> (Watching, Int) in
            if state.closed { return (.closed, 0) }
            // Closed streams linger until the loop's next round: not counted.
            let held = state.watchers.values.count { $0.subscription.tenant == subscription.tenant && !$0.stream.isClosed }
            if held >= streamsPerTenant { return (.atLimit(streamsPerTenant), 0) }
            state.watchers[ObjectIdentifier(watcher)] = watcher
            if state.loop == nil { state.loop = Task { await self.run() } }
            return (.started, state.watchers.count)
        }
        guard case .started = outcome.0 else { return outcome.0 }
        stream.write(Array(": watching\nretry: 2000\n\n".utf8))
        open.record(outcome.1)
        return .started
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
        var turn = 0
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
                guard let reached = position else { continue }
                // Live events first: streams catching up cannot delay them by more than a round's catch-up budget.
                let (events, upTo) = try await feed.read(after: reached, tenant: nil, allocation: nil, limit: 2000)
                let current = watchers.filter { watcher in watcher.position.withLock { $0 == nil || $0! >= reached } }
                for (watcher, frames) in Self.fanOut(events, to: current) {
                    deliver(frames, to: watcher, upTo: upTo)
                }
                position = upTo
                try await catchUp(watchers, to: upTo, turn: &turn)
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

    /// Streams behind the loop (resumed from an older event) read a page of their own
    /// each, in turns, for at most `catchUpBudget` a round: 300 streams resuming from the
    /// feed's start take rounds, not everyone's live events.
    private func catchUp(_ watchers: [Watcher], to reached: FeedPosition, turn: inout Int) async throws {
        let behind = watchers.filter { watcher in watcher.position.withLock { $0.map { $0 < reached } ?? false } }
        guard !behind.isEmpty else { return }
        let started = ContinuousClock.now
        let first = turn
        for step in 0..<behind.count where ContinuousClock.now - started < catchUpBudget {
            let watcher = behind[(first + step) % behind.count]
            guard let at = watcher.position.withLock({ $0 }) else { continue }
            let (events, upTo) = try await feed.read(
                after: at, tenant: watcher.subscription.tenant, allocation: watcher.subscription.allocation, limit: 500)
            deliver(events.filter { $0.position <= reached }.map(Frame.init), to: watcher, upTo: min(upTo, reached))
            turn = first + step + 1
        }
    }

    /// An event as its stream frame, encoded once for every watcher that takes it.
    struct Frame {
        var position: FeedPosition
        var bytes: [UInt8]

        init(_ event: FeedEvent) {
            position = event.position
            bytes = Array("id: \(event.position)\nevent: \(event.type)\ndata: \(event.json)\n\n".utf8)
        }
    }

    /// Each watcher's frames among `events`. Watchers are looked up by the event's
    /// allocation and tenant, so the work grows with the events and the watchers that
    /// take them, not with events × watchers (1,000 streams on quiet allocations cost
    /// nothing per event). Every watcher, including those given nothing, is in the
    /// answer: its position moves on too.
    static func fanOut(_ events: [FeedEvent], to watchers: [Watcher]) -> [(Watcher, [Frame])] {
        var everything: [Int] = []
        var byTenant: [UUID: [Int]] = [:]
        var byAllocation: [UUID: [Int]] = [:]
        for (index, watcher) in watchers.enumerated() {
            if let allocation = watcher.subscription.allocation {
                byAllocation[allocation, default: []].append(index)
            } else if let tenant = watcher.subscription.tenant {
                byTenant[tenant, default: []].append(index)
            } else {
                everything.append(index)
            }
        }
        var frames = Array(repeating: [Frame](), count: watchers.count)
        for event in events {
            var takers = everything
            if let tenant = event.tenantId { takers += byTenant[tenant] ?? [] }
            if let allocation = event.allocationId { takers += byAllocation[allocation] ?? [] }
            guard !takers.isEmpty else { continue }
            let frame = Frame(event)
            for index in takers where watchers[index].wants(event) { frames[index].append(frame) }
        }
        return Array(zip(watchers, frames))
    }

    /// Writes the frames after the watcher's position, then moves it to `upTo`. Frames
    /// go out in writes of up to 64 KiB, so a round wakes the connection once or a few
    /// times rather than once per event.
    private func deliver(_ frames: [Frame], to watcher: Watcher, upTo: FeedPosition) {
        let after = watcher.position.withLock { $0 }
        var chunk: [UInt8] = []
        var chunkEnd: FeedPosition?
        func flush() -> Bool {
            guard let end = chunkEnd else { return true }
            defer { chunk.removeAll(keepingCapacity: true) }
            chunkEnd = nil
            switch watcher.stream.write(chunk) {
            case .written:
                watcher.position.withLock { $0 = end }
                return true
            case .full:
                self.end(watcher, event: "dropped", reason: "the client did not keep up; resume with Last-Event-ID")
                return false
            case .closed:
                return false
            }
        }
        for frame in frames where after == nil || frame.position > after! {
            chunk += frame.bytes
            chunkEnd = frame.position
            if chunk.count >= 64 * 1024 && !flush() { return }
        }
        guard flush() else { return }
        watcher.position.withLock { $0 = max($0 ?? upTo, upTo) }
    }

    private func end(_ watcher: Watcher, event: String, reason: String) {
        if event == "dropped" { dropped.increment() }
        // Its id is where to resume: every event up to it was written before.
        let id = watcher.position.withLock { $0 }.map { "id: \($0)\n" } ?? ""
        watcher.stream.write(Array("\(id)event: \(event)\ndata: \(EventBodies.streamEnd(reason: reason))\n\n".utf8), force: true)
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
