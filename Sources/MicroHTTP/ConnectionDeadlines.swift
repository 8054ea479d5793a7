import CMicroHTTPD
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One open connection (`MHD_OPTION_NOTIFY_CONNECTION` stores it as the socket
/// context): its socket, and since when its current request has been arriving.
final class ConnectionClock: Sendable {
    let fd: Int32
    /// Monotonic nanoseconds when the current request began arriving; 0 while
    /// none is (a handler runs, or its answer is being sent).
    let receivingSince: Atomic<UInt64>

    init(fd: Int32, now: UInt64) {
        self.fd = fd
        receivingSince = Atomic(now)
    }
}

/// `requestTimeoutSeconds`: a request's line, headers and body must all arrive
/// within the timeout, counted from the connection's start or the end of its
/// previous request. libmicrohttpd only has an idle timeout, which a client
/// sending a byte now and then never reaches; so overdue connections are shut
/// down here (`shutdown(2)`: MHD then sees the peer gone and closes them itself).
final class ConnectionDeadlines: Sendable {
    let timeoutNanoseconds: UInt64
    /// The open connections. MHD notifies a connection's end before it closes the
    /// socket, and `closeOverdue` shuts sockets down under this lock: it never
    /// touches a descriptor that was closed and reused.
    private let open = Mutex<[ObjectIdentifier: ConnectionClock]>([:])

    init(timeoutSeconds: Int) {
        timeoutNanoseconds = UInt64(timeoutSeconds) * 1_000_000_000
    }

    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    /// MHD_CONNECTION_NOTIFY_STARTED: the socket context to store (retained).
    func started(_ connection: OpaquePointer) -> UnsafeMutableRawPointer {
        let clock = ConnectionClock(fd: gpb_mhd_connection_fd(connection), now: Self.now())
        open.withLock { $0[ObjectIdentifier(clock)] = clock }
        return Unmanaged.passRetained(clock).toOpaque()
    }

    /// MHD_CONNECTION_NOTIFY_CLOSED with the socket context `started` returned.
    func closed(_ context: UnsafeMutableRawPointer) {
        let clock = Unmanaged<ConnectionClock>.fromOpaque(context).takeRetainedValue()
        _ = open.withLock { $0.removeValue(forKey: ObjectIdentifier(clock)) }
    }

    /// The request on `connection` is complete (or answered before its body): the clock stops.
    static func requestReceived(_ connection: OpaquePointer) {
        clock(connection)?.receivingSince.store(0, ordering: .relaxed)
    }

    /// The request on `connection` is over: the next one's clock starts.
    static func requestCompleted(_ connection: OpaquePointer) {
        clock(connection)?.receivingSince.store(now(), ordering: .relaxed)
    }

    private static func clock(_ connection: OpaquePointer) -> ConnectionClock? {
        gpb_mhd_socket_context(connection).map { Unmanaged<ConnectionClock>.fromOpaque($0).takeUnretainedValue() }
    }

    /// Shuts down every connection whose request has been arriving for longer than the timeout.
    func closeOverdue() {
        let now = Self.now()
        open.withLock { open in
            for clock in open.values {
                let since = clock.receivingSince.load(ordering: .relaxed)
                if since != 0, now &- since > timeoutNanoseconds, clock.fd >= 0 {
                    // Only once: MHD takes a while to notice, and the clock would stay overdue.
                    clock.receivingSince.store(0, ordering: .relaxed)
                    shutdown(clock.fd, Int32(SHUT_RDWR))
                }
            }
        }
    }
}
