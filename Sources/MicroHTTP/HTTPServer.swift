import CMicroHTTPD
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Settings of an `HTTPServer`. Every libmicrohttpd limit is set explicitly
/// because its defaults have no idle timeout and no per-IP limit.
public struct HTTPServerConfiguration: Sendable {
    /// Numeric IPv4 or IPv6 address to bind (no name resolution).
    public var host: String = "127.0.0.1"
    /// Port to bind; 0 = ephemeral, read the bound port from `HTTPServer.port`.
    public var port: Int = 8080
    /// libmicrohttpd worker threads (`MHD_OPTION_THREAD_POOL_SIZE`). They parse
    /// and write HTTP and run the router's synchronous routes; every other handler
    /// runs as a Swift task, not on these threads.
    public var threadPoolSize: Int = HTTPServerConfiguration.onlineCores
    /// Maximum simultaneous connections (`MHD_OPTION_CONNECTION_LIMIT`).
    public var connectionLimit: Int = 1024
    /// Maximum simultaneous connections from one IP address
    /// (`MHD_OPTION_PER_IP_CONNECTION_LIMIT`). 0 = unlimited, the default,
    /// because tests, benchmarks and a fronting load balancer all come from a
    /// single address; set it when clients connect directly.
    public var perIPConnectionLimit: Int = 0
    /// Idle timeout of a connection, also while a request is half sent
    /// (`MHD_OPTION_CONNECTION_TIMEOUT`). It does not apply while a handler
    /// runs (the connection is suspended then): handlers need their own deadlines.
    public var connectionTimeoutSeconds: Int = 30
    /// Memory per connection for the request line, headers and buffers
    /// (`MHD_OPTION_CONNECTION_MEMORY_LIMIT`), 32 KiB as libmicrohttpd's own
    /// default. A header that does not fit is answered 431 by libmicrohttpd
    /// itself, with its own HTML body (measured with 0.9.75 and 32 KiB: a
    /// 32,200-byte header still fits, 32,500 bytes get 431; in between the
    /// connection is closed without an answer).
    ///
    /// It costs CPU on every request, not only memory: 0.9.75 zeroes the whole
    /// pool when a kept-alive connection starts its next request
    /// (`MHD_pool_reset`). 64 KiB took about 3.5 µs more CPU per request than
    /// 32 KiB (`GET /healthz`, 2 cores), a sixth of the whole answer.
    public var connectionMemoryLimit: Int = 32 * 1024
    /// Maximum size of the request line plus header fields (names, values and
    /// separators), checked before the body is read; above it the answer is 431
    /// through `errorResponder` (`.requestHeaderFieldsTooLarge`) and the
    /// connection is closed. Keep it well below `connectionMemoryLimit`: larger
    /// headers never reach this check (see there). A 20 KB header gets 431.
    public var maxHeaderBytes: Int = 16 * 1024
    /// Maximum request body. Above it the answer is 413, decided from
    /// `Content-Length` before reading the body, or once an accumulating
    /// (chunked) body exceeds it; the rest of such a body is drained and
    /// discarded, and the connection is dropped if it sends another
    /// `maxBodyBytes` after the limit.
    public var maxBodyBytes: Int = 1 << 20
    /// Renders the errors the server answers itself (413, 431, 500).
    public var errorResponder: HTTPErrorResponder = HTTPServerErrors.plainText

    public init() {}

    static var onlineCores: Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}

/// Thrown by `HTTPServer.start()`.
public struct HTTPServerStartError: Error, CustomStringConvertible {
    public let description: String
}

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
    /// not a numeric address, the port cannot be bound, or it was started before.
    public func start() throws {
        try lifecycle.withLock { lifecycle in
            guard case .idle = lifecycle else {
                throw HTTPServerStartError(description: "HTTPServer.start(): the server was already started")
            }
            let configuration = core.configuration
            guard (0...65535).contains(configuration.port) else {
                throw HTTPServerStartError(description: "HTTPServer.start(): port \(configuration.port) is out of range")
            }
            let flags = MHD_USE_POLL_INTERNAL_THREAD.rawValue | MHD_ALLOW_SUSPEND_RESUME.rawValue
            var result: Int32 = 0
            var savedErrno: Int32 = 0
            // passRetained: MHD holds this pointer for both callbacks until
            // MHD_stop_daemon returns; the reference is released right after that
            // (in shutdown() or deinit), so the core can never die under MHD.
            let unmanaged = Unmanaged.passRetained(core)
            let daemon = gpb_mhd_start_daemon(
                flags, configuration.host, UInt16(configuration.port),
                UInt32(clamping: max(1, configuration.threadPoolSize)),
                UInt32(clamping: max(1, configuration.connectionLimit)),
                UInt32(clamping: max(0, configuration.perIPConnectionLimit)),
                UInt32(clamping: max(0, configuration.connectionTimeoutSeconds)),
                max(4096, configuration.connectionMemoryLimit),
                // _withUnsafeGuaranteedRef: MHD's reference keeps the core alive, and
                // every MHD thread retaining and releasing the one shared core on every
                // call would bounce its reference count between the cores.
                { cls, connection, url, method, _, uploadData, uploadDataSize, conCls in
                    guard let cls, let connection, let uploadDataSize, let conCls else { return .NO }
                    return Unmanaged<ServerCore>.fromOpaque(cls)._withUnsafeGuaranteedRef { core in
                        core.access(
                            connection: connection, url: url, method: method,
                            uploadData: uploadData, uploadDataSize: uploadDataSize, conCls: conCls)
                    }
                },
                unmanaged.toOpaque(),
                { cls, _, conCls, _ in
                    guard let cls, let conCls, let raw = conCls.pointee else { return }
                    conCls.pointee = nil
                    Unmanaged<ServerCore>.fromOpaque(cls)._withUnsafeGuaranteedRef { $0.completed(raw) }
                },
                unmanaged.toOpaque(),
                &result, &savedErrno)
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
            let port = Int(gpb_mhd_bind_port(daemon))
            lifecycle = .running(DaemonPointer(raw: daemon), port: port == 0 ? configuration.port : port)
        }
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

/// What MHD's `*con_cls` holds between the callbacks of one request: a
/// `RequestContext`, or for the common case of a request without a body that is
/// answered on the MHD thread, one of these markers, so such a request allocates
/// no per-request state. Markers are small odd addresses, never a Swift object's.
enum RequestSlot {
    /// The headers were seen (first call) and no body so far.
    static var headersOnly: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: 0x1)! }
    /// Answered on the final call, not counted as pending (503 during shutdown).
    static var answered: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: 0x3)! }
    /// Answered on the final call, with the request counted as pending.
    static var answeredCounted: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: 0x5)! }
}

/// Per-request state for a request with a body, an async handler or an answer
/// queued on the first call: owned by MHD's `*con_cls` (retained until
/// NOTIFY_COMPLETED) and by an async handler's task.
final class RequestContext: Sendable {
    enum Phase {
        case receiving
        /// Routed: an async handler runs, or a response was queued on this call.
        case handling
        /// An async handler's response, to queue on the next call.
        case ready(HTTPResponse)
        case queued
    }

    struct State {
        var phase: Phase
        var body: [UInt8] = []
        var tooLarge = false
        var discarded = 0
        /// NOTIFY_COMPLETED ran: the connection pointer must not be used again.
        var closed = false
        /// This request is counted in `ServerCore`'s pending handlers.
        var counted = false
    }

    let connection: ConnectionPointer
    let state: Mutex<State>

    init(connection: ConnectionPointer, phase: Phase) {
        self.connection = connection
        state = Mutex(State(phase: phase))
    }
}

/// What the C callbacks see: configuration, routing and shutdown bookkeeping.
final class ServerCore: Sendable {
    struct State {
        var pending = 0
        /// Set once pending reached 0 during shutdown: no new handler may start
        /// (a suspended connection would make MHD_stop_daemon abort).
        var closedForHandlers = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    let configuration: HTTPServerConfiguration
    /// The route for a complete request (`Router.route(for:)`, or the one handler).
    let dispatch: @Sendable (inout HTTPRequest) -> Router.Match
    let state = Mutex(State())
    /// Set by `beginShutdown()` and never cleared; read without the lock by every
    /// response (`Connection: close`). `completed` reads it after taking the lock
    /// that `waitUntilNoPendingHandlers` takes after setting it, so it sees it.
    let shuttingDown = Atomic<Bool>(false)
    let lastPort = Mutex<Int?>(nil)

    init(configuration: HTTPServerConfiguration, dispatch: @escaping @Sendable (inout HTTPRequest) -> Router.Match) {
        self.configuration = configuration
        self.dispatch = dispatch
    }

    // MARK: MHD callbacks (on MHD's threads)

    func access(
        connection: OpaquePointer,
        url: UnsafePointer<CChar>?,
        method: UnsafePointer<CChar>?,
        uploadData: UnsafePointer<CChar>?,
        uploadDataSize: UnsafeMutablePointer<Int>,
        conCls: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    ) -> MHD_Result {
        guard let raw = conCls.pointee else {
            // First call: headers only. Answering here closes the connection,
            // which is what oversized headers or a too-large body declared upfront deserve.
            let tooLarge: HTTPServerError?
            if headerBytes(connection, url: url, method: method) > configuration.maxHeaderBytes {
                tooLarge = .requestHeaderFieldsTooLarge
            } else if let declared = MHD_lookup_connection_value(connection, .HEADER_KIND, "Content-Length"),
                let length = Int(String(cString: declared).trimmingOptionalWhitespace()),
                length > configuration.maxBodyBytes
            {
                tooLarge = .payloadTooLarge(limit: configuration.maxBodyBytes)
            } else {
                tooLarge = nil
            }
            guard let tooLarge else {
                conCls.pointee = RequestSlot.headersOnly
                return .YES
            }
            let context = RequestContext(connection: ConnectionPointer(raw: connection), phase: .queued)
            conCls.pointee = Unmanaged.passRetained(context).toOpaque()
            let request = makeRequest(connection, url: url, method: method, body: [])
            return queue(connection, configuration.errorResponder(tooLarge, request), request: request)
        }
        let size = uploadDataSize.pointee
        let context: RequestContext
        switch raw {
        case RequestSlot.headersOnly:
            guard size > 0 else {
                // The request is complete and has no body.
                return route(connection, url: url, method: method, body: [], context: nil, conCls: conCls)
            }
            context = RequestContext(connection: ConnectionPointer(raw: connection), phase: .receiving)
            conCls.pointee = Unmanaged.passRetained(context).toOpaque()
        case RequestSlot.answered, RequestSlot.answeredCounted:
            return .YES  // the response is queued: nothing left to do
        default:
            context = Unmanaged<RequestContext>.fromOpaque(raw).takeUnretainedValue()
        }
        if size > 0 {
            let limit = configuration.maxBodyBytes
            let keep = context.state.withLock { state -> Bool in
                if state.tooLarge {
                    state.discarded += size
                    return state.discarded <= limit
                }
                if state.body.count + size > limit {
                    state.tooLarge = true
                    state.body = []
                    return true
                }
                if let uploadData {
                    state.body.append(contentsOf: UnsafeRawBufferPointer(start: uploadData, count: size))
                }
                return true
            }
            uploadDataSize.pointee = 0
            return keep ? .YES : .NO
        }

        enum Action {
            case route([UInt8])
            case tooLarge
            case queue(HTTPResponse)
            case nothing
        }
        let action = context.state.withLock { state -> Action in
            switch state.phase {
            case .receiving:
                if state.tooLarge {
                    state.phase = .queued
                    return .tooLarge
                }
                state.phase = .handling
                let body = state.body
                state.body = []
                return .route(body)
            case .ready(let response):
                state.phase = .queued
                return .queue(response)
            case .handling, .queued:
                return .nothing
            }
        }
        switch action {
        case .nothing:
            return .YES
        case .queue(let response):
            return queue(connection, response)
        case .tooLarge:
            let request = makeRequest(connection, url: url, method: method, body: [])
            return queue(
                connection, configuration.errorResponder(.payloadTooLarge(limit: configuration.maxBodyBytes), request),
                request: request)
        case .route(let body):
            return route(connection, url: url, method: method, body: body, context: context, conCls: conCls)
        }
    }

    /// The request is complete: admit it (503 once closed for handlers), route it,
    /// then answer right away (synchronous route, 404, 405) or start its async
    /// handler. `context` is nil for a request without a body so far.
    private func route(
        _ connection: OpaquePointer, url: UnsafePointer<CChar>?, method: UnsafePointer<CChar>?, body: [UInt8],
        context: RequestContext?, conCls: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    ) -> MHD_Result {
        var request = makeRequest(connection, url: url, method: method, body: body)
        guard admit() else {
            if let context {
                context.state.withLock { $0.phase = .queued }
            } else {
                conCls.pointee = RequestSlot.answered
            }
            return queue(
                connection,
                HTTPResponse(
                    status: 503, headers: HTTPHeaders([("Content-Type", "text/plain; charset=utf-8")]),
                    body: Array("Service Unavailable: shutting down\n".utf8)),
                request: request)
        }
        // Counted from here until NOTIFY_COMPLETED, whatever answers: marked so in
        // the context, or by the marker when answering at once without one.
        func countAnswered() {
            if let context {
                context.state.withLock { $0.counted = true }
            } else {
                conCls.pointee = RequestSlot.answeredCounted
            }
        }
        switch dispatch(&request) {
        case .synchronous(let handler):
            countAnswered()
            return queue(connection, handler(request), request: request)
        case .answer(let response):
            countAnswered()
            return queue(connection, response, request: request)
        case .asynchronous(let handler):
            let context = context ?? {
                let made = RequestContext(connection: ConnectionPointer(raw: connection), phase: .handling)
                conCls.pointee = Unmanaged.passRetained(made).toOpaque()
                return made
            }()
            context.state.withLock { $0.counted = true }
            MHD_suspend_connection(connection)
            Task { [request] in
                let response = await handler(request)
                self.handlerFinished(context, response)
            }
            return .YES
        }
    }

    /// NOTIFY_COMPLETED with the request's `*con_cls`: the request is over
    /// (response sent, or aborted).
    func completed(_ raw: UnsafeMutableRawPointer) {
        let counted: Bool
        switch raw {
        case RequestSlot.headersOnly, RequestSlot.answered:
            counted = false
        case RequestSlot.answeredCounted:
            counted = true
        default:
            // Balances the passRetained when the context was made.
            let context = Unmanaged<RequestContext>.fromOpaque(raw).takeRetainedValue()
            counted = context.state.withLock { state -> Bool in
                state.closed = true
                let counted = state.counted
                state.counted = false
                return counted
            }
        }
        guard counted else { return }
        let closed = state.withLock { state -> Bool in
            state.pending -= 1
            guard state.pending == 0, shuttingDown.load(ordering: .relaxed) else { return false }
            state.closedForHandlers = true
            return true
        }
        // Rare, and apart so the common path handles no array of continuations. A
        // waiter that comes after this sees pending at 0 and does not wait.
        guard closed else { return }
        let waiters = state.withLock { state in
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    // MARK: Handlers

    /// Counts a handler as pending; false once shutdown closed the server for handlers.
    private func admit() -> Bool {
        state.withLock { state in
            guard !state.closedForHandlers else { return false }
            state.pending += 1
            return true
        }
    }

    /// In an async handler's task.
    private func handlerFinished(_ context: RequestContext, _ response: HTTPResponse) {
        let resume = context.state.withLock { state -> Bool in
            guard !state.closed else { return false }
            state.phase = .ready(response)
            return true
        }
        // Outside the lock: the connection stays valid until it is resumed, see
        // ConnectionPointer. MHD then calls the access handler, which queues.
        if resume { MHD_resume_connection(context.connection.raw) }
    }

    // MARK: Shutdown

    func beginShutdown() {
        shuttingDown.store(true, ordering: .relaxed)
    }

    func waitUntilNoPendingHandlers() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { state -> Bool in
                if state.pending == 0 {
                    state.closedForHandlers = true
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }

    /// For deinit: true (and no handler may start any more) when none is pending.
    func stopIfIdle() -> Bool {
        state.withLock { state in
            guard state.pending == 0 else { return false }
            state.closedForHandlers = true
            return true
        }
    }

    // MARK: Helpers

    /// Request line plus header fields, as `maxHeaderBytes` counts them, without
    /// making strings: method, path, "HTTP/1.1" and separators, then name, value,
    /// ": " and CRLF per field.
    private func headerBytes(
        _ connection: OpaquePointer, url: UnsafePointer<CChar>?, method: UnsafePointer<CChar>?
    ) -> Int {
        var total = (method.map { strlen($0) } ?? 0) + (url.map { strlen($0) } ?? 0) + 12
        _ = MHD_get_connection_values(
            connection, .HEADER_KIND,
            { cls, _, key, value in
                guard let cls, let key else { return .YES }
                cls.assumingMemoryBound(to: Int.self).pointee += strlen(key) + (value.map { strlen($0) } ?? 0) + 4
                return .YES
            },
            &total)
        return total
    }

    private func makeRequest(
        _ connection: OpaquePointer, url: UnsafePointer<CChar>?, method: UnsafePointer<CChar>?, body: [UInt8]
    ) -> HTTPRequest {
        // Straight into the request's containers (no intermediate array of pairs).
        var query = [String: String]()  // not `[:]`, which calls init(dictionaryLiteral:)
        withUnsafeMutablePointer(to: &query) { pointer in
            _ = MHD_get_connection_values(
                connection, .GET_ARGUMENT_KIND,
                { cls, _, key, value in
                    guard let cls, let key else { return .YES }
                    cls.assumingMemoryBound(to: [String: String].self).pointee[String(cString: key)] =
                        value.map { String(cString: $0) } ?? ""
                    return .YES
                },
                pointer)
        }
        var headers = HTTPHeaders()
        withUnsafeMutablePointer(to: &headers) { pointer in
            _ = MHD_get_connection_values(
                connection, .HEADER_KIND,
                { cls, _, key, value in
                    guard let cls, let key else { return .YES }
                    cls.assumingMemoryBound(to: HTTPHeaders.self).pointee.add(
                        String(cString: key), value.map { String(cString: $0) } ?? "")
                    return .YES
                },
                pointer)
        }
        var request = HTTPRequest(
            method: method.map { String(cString: $0) } ?? "",
            path: url.map { String(cString: $0) } ?? "/",
            query: query,
            headers: headers,
            body: body)
        // INET6_ADDRSTRLEN is 46.
        request.remoteAddress = withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buffer in
            guard gpb_mhd_client_address(connection, buffer.baseAddress, buffer.count) == 1 else { return nil }
            return String(cString: buffer.baseAddress!)
        }
        return request
    }

    /// Queues `response`, or the error responder's 500 (rendered for `request`)
    /// when its status is not in 200...599.
    private func queue(_ connection: OpaquePointer, _ response: HTTPResponse, request: HTTPRequest) -> MHD_Result {
        // Not one function with an optional request: making the optional copies it.
        queueValid(connection, (200...599).contains(response.status) ? response : internalError(request))
    }

    /// `queue` for an async handler's response (the request is no longer at hand).
    private func queue(_ connection: OpaquePointer, _ response: HTTPResponse) -> MHD_Result {
        queueValid(connection, (200...599).contains(response.status) ? response : internalError(nil))
    }

    private func internalError(_ request: HTTPRequest?) -> HTTPResponse {
        let response = configuration.errorResponder(.internalError, request)
        return (200...599).contains(response.status) ? response : HTTPServerErrors.plainText(.internalError, request)
    }

    /// Builds an MHD response from `response` and queues it (`MHD_queue_response`).
    private func queueValid(_ connection: OpaquePointer, _ response: HTTPResponse) -> MHD_Result {
        if let stream = response.stream { return queueStream(connection, response, stream) }
        let created: OpaquePointer? =
            if response.body.isEmpty {
                MHD_create_response_from_buffer(0, nil, .RESPMEM_PERSISTENT)
            } else {
                response.body.withUnsafeBytes { bytes in
                    MHD_create_response_from_buffer(
                        bytes.count, UnsafeMutableRawPointer(mutating: bytes.baseAddress), .RESPMEM_MUST_COPY)
                }
            }
        guard let mhdResponse = created else { return .NO }
        defer { MHD_destroy_response(mhdResponse) }
        for (name, value) in response.headers {
            // The byte count rules out most names at once, exactly: the only non-ASCII
            // character that lowercases to ASCII is U+212A KELVIN SIGN ("k"), in neither name.
            let length = name.utf8.count
            if length == 14 && name.equalsIgnoringCase("Content-Length")
                || length == 17 && name.equalsIgnoringCase("Transfer-Encoding")
            {
                continue
            }
            // withCString, not the implicit String-to-pointer conversion, which copies into an array.
            _ = name.withCString { name in value.withCString { MHD_add_response_header(mhdResponse, name, $0) } }
        }
        if shuttingDown.load(ordering: .relaxed) {
            _ = MHD_add_response_header(mhdResponse, "Connection", "close")
        }
        return MHD_queue_response(connection, UInt32(response.status), mhdResponse)
    }
}
