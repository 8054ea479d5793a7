import CLibPQ
import Foundation
import Synchronization

/// A connection that only listens (`LISTEN`), on a thread of its own: libpq blocks and
/// forbids two threads on one `PGconn`, so the socket is polled and read
/// (`PQconsumeInput`, `PQnotifies`) there, never on Swift's cooperative pool.
///
/// A lost connection is opened again with backoff; every (re)connection is reported as
/// `.connected`, since notifications sent while it was down are gone: the receiver
/// should then act as if every channel had fired.
public final class PostgresListener: Sendable {
    public enum Event: Sendable, Equatable {
        /// Listening (again): anything may have changed meanwhile.
        case connected
        case notification(channel: String, payload: String)
    }

    /// A class, so that the thread can share it: an `Atomic` cannot be captured.
    private final class StopFlag: Sendable {
        let stopped = Atomic<Bool>(false)
        var isSet: Bool { stopped.load(ordering: .relaxed) }
    }

    private let flag = StopFlag()

    /// Starts the thread; `handler` runs on it, one event at a time, and must not block.
    public init(configuration: PostgresConfiguration, channels: [String], handler: @escaping @Sendable (Event) -> Void) {
        let thread = Thread { [flag] in
            Self.run(configuration, channels, handler, flag)
        }
        thread.name = "gpubroker.postgres.listen"
        thread.start()
    }

    /// The thread closes its connection and exits within a quarter of a second.
    public func stop() {
        flag.stopped.store(true, ordering: .relaxed)
    }

    deinit {
        stop()
    }

    private static func run(
        _ configuration: PostgresConfiguration, _ channels: [String],
        _ handler: @Sendable (Event) -> Void, _ flag: StopFlag
    ) {
        var backoff = 0.1
        while !flag.isSet {
            do {
                let connection = try PostgresConnection.connect(configuration)
                for channel in channels {
                    try connection.executeScript("LISTEN \"\(channel.replacingOccurrences(of: "\"", with: "\"\""))\"")
                }
                backoff = 0.1
                handler(.connected)
                try listen(connection, handler, flag)
            } catch {
                Thread.sleep(forTimeInterval: backoff * Double.random(in: 0.5...1))
                backoff = min(backoff * 2, 5)
            }
        }
    }

    /// Returns when stopped; throws when the connection is lost.
    private static func listen(_ connection: PostgresConnection, _ handler: @Sendable (Event) -> Void, _ flag: StopFlag) throws {
        let handle = connection.handle
        var lastTraffic = ContinuousClock.now
        while !flag.isSet {
            var descriptor = pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, 250)
            if ready > 0 {
                lastTraffic = .now
                guard PQconsumeInput(handle) == 1, PQstatus(handle) == CONNECTION_OK else {
                    throw PostgresError(kind: .connection, message: "listening connection lost")
                }
            } else if ContinuousClock.now - lastTraffic > .seconds(10) {
                // A silent peer may be gone without a FIN (a failover, a cut link): ask.
                try connection.executeScript("SELECT 1")
                lastTraffic = .now
            }
            while let notice = PQnotifies(handle) {
                let event = Event.notification(
                    channel: String(cString: notice.pointee.relname), payload: String(cString: notice.pointee.extra))
                PQfreemem(notice)
                handler(event)
            }
        }
    }
}
