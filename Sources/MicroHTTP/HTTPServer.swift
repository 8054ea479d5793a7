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
    /// libmicrohttpd worker threads (`MHD_OPTION_THREAD_POOL_SIZE`). They only
    /// parse and write HTTP: handlers run as Swift tasks, not on these threads.
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
    /// (`MHD_OPTION_CONNECTION_MEMORY_LIMIT`). A header that does not fit is
    /// answered 431 by libmicrohttpd itself, with its own HTML body (measured
    /// with 0.9.75 and 64 KiB: a 63 KB header still fits, 70 KB gets 431).
    public var connectionMemoryLimit: Int = 64 * 1024
    /// Maximum size of the request line plus header fields (names, values and
    /// separators), checked before the body is read; above it the answer is 431
    /// through `errorResponder` (`.requestHeaderFieldsTooLarge`) and the
    /// connection is closed. Keep it below `connectionMemoryLimit`: larger
    /// headers never reach this check (see there). A 40 KB header gets 431.
    public var maxHeaderBytes: Int = 32 * 1024
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

/// An HTTP/1.1 server over libmicrohttpd (MHD) with async Swift handlers.
///
/// How a request flows: MHD's worker threads (`MHD_USE_POLL_INTERNAL_THREAD` and
/// `MHD_OPTION_THREAD_POOL_SIZE`; poll, not epoll: in 0.9.75's epoll mode
/// `MHD_quiesce_daemon` races a worker that took the listen socket out of its epoll
/// set at the connection limit, and MHD aborts the process with "Failed to remove
/// listen FD from epoll set")
/// parse the request and call the access handler: once for the headers (per-
/// request state is created; a `Content-Length` above `maxBodyBytes` is answered
/// 413 right there), once per body chunk (appended), and once with no data when
/// the body is complete. Then the connection is suspended
/// (`MHD_suspend_connection`), the handler runs in a Swift `Task`, its response
/// is stored in the per-request state and the connection is resumed
/// (`MHD_resume_connection`); MHD calls the access handler again and the
/// response is queued there.
///
/// Why: a handler never occupies an MHD thread, so a slow handler (database,
/// upstream call) does not stall the other connections that MHD's uneven
/// thread pool put on the same thread, and handlers can be ordinary `async`
/// code. Keeping blocking work (libpq) off the cooperative pool is the job of
/// the module doing it. Queueing on a later callback rather than the first one
/// also keeps connections alive: 0.9.75 answers `Connection: close` to a
/// response queued on the first call.
///
/// Lifecycle: per-request state is released in `MHD_OPTION_NOTIFY_COMPLETED`,
/// which also runs on aborts. A suspended connection cannot be closed by MHD
/// (it is not polled, and never times out) except by `MHD_stop_daemon`, which
/// this type only calls once no handler is pending; so a finished handler can
/// always resume its connection. `shutdown()` stops accepting
/// (`MHD_quiesce_daemon`), waits until every started handler has finished and
/// its response has been sent (or the client went away), then stops the daemon.
/// Handlers are assumed to finish: give them deadlines.
public final class HTTPServer: Sendable {
    private let core: ServerCore
    private let lifecycle: Mutex<Lifecycle>

    private enum Lifecycle {
        case idle
        case running(DaemonPointer, port: Int)
        case stopping(port: Int)
        case stopped
    }

    public init(configuration: HTTPServerConfiguration, handler: @escaping HTTPHandler) {
        core = ServerCore(configuration: configuration, handler: handler)
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
                { cls, connection, url, method, _, uploadData, uploadDataSize, conCls in
                    guard let cls, let connection, let uploadDataSize, let conCls else { return .NO }
                    let core = Unmanaged<ServerCore>.fromOpaque(cls).takeUnretainedValue()
                    return core.access(
                        connection: connection, url: url, method: method,
                        uploadData: uploadData, uploadDataSize: uploadDataSize, conCls: conCls)
                },
                unmanaged.toOpaque(),
                { cls, _, conCls, _ in
                    guard let cls, let conCls, let raw = conCls.pointee else { return }
                    conCls.pointee = nil
                    let core = Unmanaged<ServerCore>.fromOpaque(cls).takeUnretainedValue()
                    // Balances the passRetained of the first access-handler call.
                    let request = Unmanaged<RequestContext>.fromOpaque(raw).takeRetainedValue()
                    core.completed(request)
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
    /// and their responses be sent (`Connection: close` is added to them), then
    /// `MHD_stop_daemon`, which closes idle and half-sent connections. Requests
    /// completing on kept-alive connections during the wait still run; after it
    /// they get 503. Does nothing if not running; a second concurrent call
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

/// Per-request state, owned by MHD's `*con_cls` (retained from the first
/// access-handler call until NOTIFY_COMPLETED) and by the handler task.
final class RequestContext: Sendable {
    enum Phase {
        case receiving
        case handling
        case ready(HTTPResponse)
        case queued
    }

    struct State {
        var phase: Phase = .receiving
        var body: [UInt8] = []
        var tooLarge = false
        var discarded = 0
        /// NOTIFY_COMPLETED ran: the connection pointer must not be used again.
        var closed = false
        /// This request is counted in `ServerCore`'s pending handlers.
        var counted = false
    }

    let connection: ConnectionPointer
    let state = Mutex(State())

    init(connection: ConnectionPointer) {
        self.connection = connection
    }
}

/// What the C callbacks see: configuration, handler and shutdown bookkeeping.
final class ServerCore: Sendable {
    struct State {
        var pending = 0
        var shuttingDown = false
        /// Set once pending reached 0 during shutdown: no new handler may start
        /// (a suspended connection would make MHD_stop_daemon abort).
        var closedForHandlers = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    let configuration: HTTPServerConfiguration
    let handler: HTTPHandler
    let state = Mutex(State())
    let lastPort = Mutex<Int?>(nil)

    init(configuration: HTTPServerConfiguration, handler: @escaping HTTPHandler) {
        self.configuration = configuration
        self.handler = handler
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
            // which is what a too-large body declared upfront deserves.
            let context = RequestContext(connection: ConnectionPointer(raw: connection))
            conCls.pointee = Unmanaged.passRetained(context).toOpaque()
            var headerBytes = (method.map { strlen($0) } ?? 0) + (url.map { strlen($0) } ?? 0) + 12
            for (name, value) in collectValues(connection, .HEADER_KIND) {
                headerBytes += name.utf8.count + value.utf8.count + 4
            }
            if headerBytes > configuration.maxHeaderBytes {
                context.state.withLock { $0.phase = .queued }
                let request = makeRequest(connection, url: url, method: method, body: [])
                return queue(connection, configuration.errorResponder(.requestHeaderFieldsTooLarge, request), request: request)
            }
            if let declared = MHD_lookup_connection_value(connection, .HEADER_KIND, "Content-Length"),
               let length = Int(String(cString: declared).trimmingSpaces()),
               length > configuration.maxBodyBytes {
                context.state.withLock { $0.phase = .queued }
                let request = makeRequest(connection, url: url, method: method, body: [])
                return queue(
                    connection, configuration.errorResponder(.payloadTooLarge(limit: configuration.maxBodyBytes), request),
                    request: request)
            }
            return .YES
        }
        let context = Unmanaged<RequestContext>.fromOpaque(raw).takeUnretainedValue()
        let size = uploadDataSize.pointee
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
            case startHandler([UInt8])
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
                return .startHandler(body)
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
            return queue(connection, response, request: nil)
        case .tooLarge:
            let request = makeRequest(connection, url: url, method: method, body: [])
            return queue(
                connection, configuration.errorResponder(.payloadTooLarge(limit: configuration.maxBodyBytes), request),
                request: request)
        case .startHandler(let body):
            let request = makeRequest(connection, url: url, method: method, body: body)
            let admitted = state.withLock { state -> Bool in
                guard !state.closedForHandlers else { return false }
                state.pending += 1
                return true
            }
            guard admitted else {
                context.state.withLock { $0.phase = .queued }
                return queue(
                    connection,
                    HTTPResponse(
                        status: 503, headers: HTTPHeaders([("Content-Type", "text/plain; charset=utf-8")]),
                        body: Array("Service Unavailable: shutting down\n".utf8)),
                    request: request)
            }
            context.state.withLock { $0.counted = true }
            MHD_suspend_connection(connection)
            let handler = handler
            Task {
                let response = await handler(request)
                self.handlerFinished(context, response)
            }
            return .YES
        }
    }

    /// NOTIFY_COMPLETED: the request is over (response sent, or aborted).
    func completed(_ context: RequestContext) {
        let counted = context.state.withLock { state -> Bool in
            state.closed = true
            let counted = state.counted
            state.counted = false
            return counted
        }
        guard counted else { return }
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.pending -= 1
            guard state.shuttingDown, state.pending == 0 else { return [] }
            state.closedForHandlers = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    // MARK: Handler tasks

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
        state.withLock { $0.shuttingDown = true }
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

    private func makeRequest(
        _ connection: OpaquePointer, url: UnsafePointer<CChar>?, method: UnsafePointer<CChar>?, body: [UInt8]
    ) -> HTTPRequest {
        var query: [String: String] = [:]
        for (name, value) in collectValues(connection, .GET_ARGUMENT_KIND) {
            query[name] = value
        }
        var request = HTTPRequest(
            method: method.map { String(cString: $0) } ?? "",
            path: url.map { String(cString: $0) } ?? "/",
            query: query,
            headers: HTTPHeaders(collectValues(connection, .HEADER_KIND)),
            body: body)
        var buffer = [CChar](repeating: 0, count: 64)
        if gpb_mhd_client_address(connection, &buffer, buffer.count) == 1 {
            request.remoteAddress = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        }
        return request
    }

    /// Wraps `MHD_get_connection_values`: all (key, value) pairs of one kind, in order.
    private func collectValues(_ connection: OpaquePointer, _ kind: MHD_ValueKind) -> [(String, String)] {
        var pairs: [(String, String)] = []
        withUnsafeMutablePointer(to: &pairs) { pointer in
            _ = MHD_get_connection_values(
                connection, kind,
                { cls, _, key, value in
                    guard let cls, let key else { return .YES }
                    let pairs = cls.assumingMemoryBound(to: [(String, String)].self)
                    pairs.pointee.append((String(cString: key), value.map { String(cString: $0) } ?? ""))
                    return .YES
                },
                pointer)
        }
        return pairs
    }

    /// Builds an MHD response from `response` and queues it (`MHD_queue_response`).
    private func queue(_ connection: OpaquePointer, _ response: HTTPResponse, request: HTTPRequest?) -> MHD_Result {
        var response = response
        if !(200...599).contains(response.status) {
            response = configuration.errorResponder(.internalError, request)
            if !(200...599).contains(response.status) {
                response = HTTPServerErrors.plainText(.internalError, request)
            }
        }
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
            let lowered = name.lowercased()
            if lowered == "content-length" || lowered == "transfer-encoding" { continue }
            _ = MHD_add_response_header(mhdResponse, name, value)
        }
        if state.withLock({ $0.shuttingDown }) {
            _ = MHD_add_response_header(mhdResponse, "Connection", "close")
        }
        return MHD_queue_response(connection, UInt32(response.status), mhdResponse)
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first == " " || first == "\t" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" { scalars.removeLast() }
        return String(scalars)
    }
}
