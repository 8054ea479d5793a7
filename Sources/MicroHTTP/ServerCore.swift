import CMicroHTTPD
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

    /// nil when `requestTimeoutSeconds` is 0.
    let deadlines: ConnectionDeadlines?
    /// Set by `HTTPServer.start()` when serving HTTPS.
    let tls = AtomicLazyReference<TLSCertificates>()

    init(configuration: HTTPServerConfiguration, dispatch: @escaping @Sendable (inout HTTPRequest) -> Router.Match) {
        self.configuration = configuration
        self.dispatch = dispatch
        deadlines = configuration.requestTimeoutSeconds > 0
            ? ConnectionDeadlines(timeoutSeconds: configuration.requestTimeoutSeconds) : nil
    }

    // MARK: Connections (MHD_OPTION_NOTIFY_CONNECTION, on MHD's threads)

    func connectionStarted(_ connection: OpaquePointer, socketContext: UnsafeMutablePointer<UnsafeMutableRawPointer?>) {
        tls.load()?.attach(to: connection)
        if let deadlines { socketContext.pointee = deadlines.started(connection) }
    }

    func connectionClosed(socketContext: UnsafeMutablePointer<UnsafeMutableRawPointer?>) {
        guard let deadlines, let raw = socketContext.pointee else { return }
        socketContext.pointee = nil
        deadlines.closed(raw)
    }

    // MARK: MHD callbacks (on MHD's threads)

    func access(
        connection: OpaquePointer,
        url: UnsafePointer<CChar>?,
        method: UnsafePointer<CChar>?,
        version: UnsafePointer<CChar>?,
        uploadData: UnsafePointer<CChar>?,
        uploadDataSize: UnsafeMutablePointer<Int>,
        conCls: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    ) -> MHD_Result {
        guard let raw = conCls.pointee, raw != RequestSlot.uriTooLong else {
            // First call: headers only. Answering here closes the connection, which
            // is what a refused request deserves (see `refusal`).
            let refused: HTTPServerError? =
                conCls.pointee == nil ? refusal(connection, url: url, method: method, version: version) : .uriTooLong
            guard let refused else {
                conCls.pointee = RequestSlot.headersOnly
                return .YES
            }
            ConnectionDeadlines.requestReceived(connection)
            let context = RequestContext(connection: ConnectionPointer(raw: connection), phase: .queued)
            conCls.pointee = Unmanaged.passRetained(context).toOpaque()
            let request = makeRequest(connection, url: url, method: method, body: [])
            return queue(connection, configuration.errorResponder(refused, request), request: request)
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
        ConnectionDeadlines.requestReceived(connection)
        var request = makeRequest(connection, url: url, method: method, body: body)
        guard admit() else {
            if let context {
                context.state.withLock { $0.phase = .queued }
            } else {
                conCls.pointee = RequestSlot.answered
            }
            return queue(connection, configuration.errorResponder(.shuttingDown, request), request: request)
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
                self.handlerFinished(context, Self.strictTransport(response, request))
            }
            return .YES
        }
    }

    /// NOTIFY_COMPLETED with the request's `*con_cls`: the request is over
    /// (response sent, or aborted).
    func completed(_ raw: UnsafeMutableRawPointer) {
        let counted: Bool
        switch raw {
        case RequestSlot.headersOnly, RequestSlot.answered, RequestSlot.uriTooLong:
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
}
