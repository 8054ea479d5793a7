import CMicroHTTPD
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An HTTP/1.1 server over libmicrohttpd (MHD) with async Swift handlers, and
/// synchronous ones for cheap routes.
///
/// How a request flows: MHD's worker threads (`MHD_USE_POLL_INTERNAL_THREAD` and
/// `MHD_OPTION_THREAD_POOL_SIZE`; poll, not epoll: in 0.9.75's epoll mode
/// `MHD_quiesce_daemon` races a worker that took the listen socket out of its epoll
/// set at the connection limit, and MHD aborts the process with "Failed to remove
/// listen FD from epoll set")
/// parse the request and call the access handler: once for the headers (headers
/// above `maxHeaderBytes` are answered 431 and a `Content-Length` above
/// `maxBodyBytes` 413 right there), once per body chunk (appended to the
/// per-request state, a `RequestContext`), and once with no data when the body is
/// complete. That last call builds the `HTTPRequest`, counts the handler as
/// pending (or answers 503 once shutdown closed the server for handlers) and
/// routes it (`Router.route(for:)`; with `init(configuration:handler:)` every
/// request goes to that one async handler):
///
/// - a synchronous route (`Router.addSynchronous`) runs right there on the MHD
///   thread and its response is queued in that same call, as are the router's own
///   404 and 405 answers;
/// - an async route suspends the connection (`MHD_suspend_connection`), the
///   handler runs in a Swift `Task`, its response is stored in the per-request
///   state and the connection is resumed (`MHD_resume_connection`, which wakes the
///   MHD thread through its inter-thread channel); MHD calls the access handler
///   again and the response is queued there.
///
/// Why: an async handler never occupies an MHD thread, so a slow handler
/// (database, upstream call) does not stall the other connections that MHD's
/// uneven thread pool put on the same thread, and handlers can be ordinary `async`
/// code. Keeping blocking work (libpq) off the cooperative pool is the job of the
/// module doing it. A synchronous route skips the suspend, task, resume and extra
/// wake-up, several times the cost of a cheap handler: use it only for handlers
/// that never block. Responses are never queued on the first call (the headers
/// one) except the 413 and 431 above: 0.9.75 answers `Connection: close` to a
/// response queued there, which those deserve and a normal answer does not.
///
/// A request without a body answered on the MHD thread allocates no per-request
/// state (see `RequestSlot`).
///
/// Lifecycle: per-request state is released in `MHD_OPTION_NOTIFY_COMPLETED`,
/// which also runs on aborts; a request stops counting as pending there too. A
/// suspended connection cannot be closed by MHD (it is not polled, and never
/// times out) except by `MHD_stop_daemon`, which this type only calls once no
/// handler is pending; so a finished handler can always resume its connection.
/// `shutdown()` stops accepting (`MHD_quiesce_daemon`), waits until every started
/// handler, synchronous or not, has finished and its response has been sent (or
/// the client went away), then stops the daemon. Handlers are assumed to finish:
/// give them deadlines.
public final class HTTPServer: Sendable {
    private let core: ServerCore
    private let lifecycle: Mutex<Lifecycle>
    /// Closes connections past `requestTimeoutSeconds` while running.
    private let reaper = Mutex<Task<Void, Never>?>(nil)

    private enum Lifecycle {
        case idle
        case running(DaemonPointer, port: Int)
        case stopping(port: Int)
        case stopped
    }

    /// Every request goes to `handler`, in a task.
    public init(configuration: HTTPServerConfiguration, handler: @escaping HTTPHandler) {
        core = ServerCore(configuration: configuration, dispatch: { _ in .asynchronous(handler) })
        lifecycle = Mutex(.idle)
    }

    /// Requests go through `router`: its synchronous routes and its 404 and 405
    /// answers on the MHD thread, its async routes in a task.
    public init(configuration: HTTPServerConfiguration, router: Router) {
        core = ServerCore(configuration: configuration, dispatch: { router.route(for: &$0) })
        lifecycle = Mutex(.idle)
    }

    /// Binds and starts serving (wraps `MHD_start_daemon`). Throws if the host is
    /// not a numeric address, the port cannot be bound, the TLS files cannot be
    /// used, or it was started before.
    public func start() throws {
        try lifecycle.withLock { lifecycle in
            guard case .idle = lifecycle else {
                throw HTTPServerStartError(description: "HTTPServer.start(): the server was already started")
            }
            let configuration = core.configuration
            guard (0...65535).contains(configuration.port) else {
                throw HTTPServerStartError(description: "HTTPServer.start(): port \(configuration.port) is out of range")
            }
            if let tls = configuration.tls { _ = core.tls.storeIfNil(try TLSCertificates(tls)) }
            var result: Int32 = 0
            var savedErrno: Int32 = 0
            // passRetained: MHD holds this pointer for its callbacks until
            // MHD_stop_daemon returns; the reference is released right after that
            // (in shutdown() or deinit), so the core can never die under MHD.
            let unmanaged = Unmanaged.passRetained(core)
            let daemon = configuration.host.withCString { host in
                withOptionalCString(configuration.tls?.priorities) { priorities in
                    var settings = gpb_mhd_settings(
                        flags: MHD_USE_POLL_INTERNAL_THREAD.rawValue | MHD_ALLOW_SUSPEND_RESUME.rawValue,
                        host: host, port: UInt16(configuration.port),
                        thread_pool_size: UInt32(clamping: max(1, configuration.threadPoolSize)),
                        connection_limit: UInt32(clamping: max(1, configuration.connectionLimit)),
                        per_ip_connection_limit: UInt32(clamping: max(0, configuration.perIPConnectionLimit)),
                        connection_timeout_seconds: UInt32(clamping: max(0, configuration.connectionTimeoutSeconds)),
                        connection_memory_limit: max(4096, configuration.connectionMemoryLimit),
                        handler: MHDCallbacks.access, completed: MHDCallbacks.completed,
                        notify_connection: MHDCallbacks.connection, uri_log: MHDCallbacks.requestLine,
                        cls: unmanaged.toOpaque(),
                        tls_priorities: priorities, tls_certificate: TLSCertificates.callback)
                    return gpb_mhd_start_daemon(&settings, &result, &savedErrno)
                }
            }
            guard let daemon else {
                unmanaged.release()
                if result == GPB_MHD_START_BAD_HOST {
                    throw HTTPServerStartError(
                        description: "HTTPServer.start(): host '\(configuration.host)' is not a numeric IPv4 or IPv6 address")
                }
                var reason = "MHD_start_daemon failed"
                if savedErrno != 0, let text = strerror(savedErrno) {
                    reason += ": " + String(cString: text)
                }
                throw HTTPServerStartError(
                    description: "HTTPServer.start(): cannot listen on \(configuration.host):\(configuration.port) (\(reason))")
            }
            if let deadlines = core.deadlines {
                reaper.withLock { reaper in
                    reaper = Task {
                        while !Task.isCancelled {
                            try? await Task.sleep(for: .milliseconds(500))
                            deadlines.closeOverdue()
                        }
                    }
                }
            }
            let port = Int(gpb_mhd_bind_port(daemon))
            lifecycle = .running(DaemonPointer(raw: daemon), port: port == 0 ? configuration.port : port)
        }
    }

    /// Reads the TLS certificate and key files again and uses them for every
    /// connection from now on; established connections keep theirs and stay open.
    /// Throws (and the certificate in use stays) when the files cannot be used or
    /// the server is not serving HTTPS.
    public func reloadTLSCertificate() throws {
        guard let tls = core.tls.load() else {
            throw HTTPServerStartError(description: "HTTPServer.reloadTLSCertificate(): not serving HTTPS")
        }
        try tls.reload()
    }

    /// The bound port (`MHD_DAEMON_INFO_BIND_PORT`): the real one when configured
    /// with 0. Before `start()` the configured port; after shutdown the last bound port.
    public var port: Int {
        lifecycle.withLock { lifecycle in
            switch lifecycle {
            case .running(_, let port), .stopping(let port): port
            case .idle, .stopped: core.lastPort.withLock { $0 } ?? core.configuration.port
            }
        }
    }

    /// Graceful stop: stop accepting (`MHD_quiesce_daemon`, the listening socket
    /// is closed so new connections are refused), let in-flight handlers finish
    /// and their responses be sent (`Connection: close` is added to them and to
    /// every response queued from now on), then `MHD_stop_daemon`, which closes
    /// idle and half-sent connections. Requests completing on kept-alive
    /// connections during the wait still run, synchronous routes included; after
    /// it they get 503. Does nothing if not running; a second concurrent call
    /// returns at once.
    public func shutdown() async {
        let daemon: DaemonPointer? = lifecycle.withLock { lifecycle in
            guard case .running(let daemon, let port) = lifecycle else { return nil }
            lifecycle = .stopping(port: port)
            core.lastPort.withLock { $0 = port }
            return daemon
        }
        guard let daemon else { return }
        reaper.withLock { $0?.cancel() }
        core.beginShutdown()
        gpb_mhd_close_socket(MHD_quiesce_daemon(daemon.raw))
        await core.waitUntilNoPendingHandlers()
        MHD_stop_daemon(daemon.raw)
        Unmanaged.passUnretained(core).release()  // the reference MHD held since start()
        lifecycle.withLock { $0 = .stopped }
    }

    deinit {
        // Not shut down: stop now if that is safe (MHD_stop_daemon aborts the
        // process when a connection is still suspended). Otherwise the daemon
        // keeps running and keeps the core alive: call shutdown().
        guard case .running(let daemon, _) = lifecycle.withLock({ $0 }) else { return }
        reaper.withLock { $0?.cancel() }
        core.beginShutdown()
        if core.stopIfIdle() {
            MHD_stop_daemon(daemon.raw)
            Unmanaged.passUnretained(core).release()
        }
    }
}

/// An MHD daemon handle.
/// @unchecked Sendable: MHD daemon functions used here (quiesce, stop, info)
/// may be called from any thread; `HTTPServer` serialises start/stop through its
/// lifecycle mutex and stops the daemon exactly once.
struct DaemonPointer: @unchecked Sendable {
    let raw: OpaquePointer
}

/// An MHD connection handle.
/// @unchecked Sendable: it is only dereferenced by MHD calls that are valid
/// while the connection is open: on MHD's own thread inside callbacks, and by
/// `MHD_resume_connection` from a handler task, which happens while the
/// connection is suspended (MHD does not close suspended connections, and the
/// daemon is only stopped once no handler is pending).
struct ConnectionPointer: @unchecked Sendable {
    let raw: OpaquePointer
}

private func withOptionalCString<Result>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> Result) -> Result {
    guard let string else { return body(nil) }
    return string.withCString(body)
}
