import BrokerCore
import BrokerEvents
import BrokerStore
import Foundation
import Logging
import Metrics
import MicroHTTP
import Synchronization

/// Everything the routes need, built once by the executable. A class: every
/// request's `RequestContext` carries it, and copying one reference is cheaper
/// than copying every field.
public final class BrokerServices: Sendable {
    public let inventory: InventoryStore
    public let tenants: TenantStore
    /// The tenants' named tokens.
    public let tokens: APITokenStore
    public let allocations: AllocationStore
    public let policies: PolicyStore
    public let usage: UsageStore
    public let admin: AdminCredential
    /// Prometheus text exposition of every metric, for `GET /metrics`.
    public let metricsText: @Sendable () -> String
    /// nil when ready; otherwise why not (database unreachable, migrations behind).
    public let readinessProblem: @Sendable () async -> String?
    public let logger: Logger
    /// Per-tenant request limit; nil = unlimited.
    public let rateLimiter: RateLimiter?
    /// Failed authentications per client address: once spent, that address gets
    /// 429 without a token lookup (tokens already cached still pass).
    public let authFailureLimiter: RateLimiter
    public let webhooks: WebhookStore
    public let queuePositions: QueuePositionStore
    public let shares: ShareStore
    public let eventFeed: EventFeedStore
    /// Watch streams; `close()` it before stopping the HTTP server, which waits for them.
    public let eventHub: EventHub
    public let webhookURLs: WebhookURLPolicy
    public let limits: ResourceLimits
    /// Bearer JWTs of OpenID Connect issuers; nil: not accepted.
    public let openID: OpenIDSignIn?

    public init(
        inventory: InventoryStore, tenants: TenantStore, allocations: AllocationStore, policies: PolicyStore,
        usage: UsageStore, admin: AdminCredential, metricsText: @escaping @Sendable () -> String,
        readinessProblem: @escaping @Sendable () async -> String?, logger: Logger, rateLimiter: RateLimiter? = nil,
        authFailureLimit: RateLimiter.Limit = RateLimiter.Limit(rate: 5, burst: 20),
        webhookURLs: WebhookURLPolicy = WebhookURLPolicy(), limits: ResourceLimits = ResourceLimits(),
        starvationLimit: Duration = MaintenanceStore.defaultStarvationLimit,
        openID: OpenIDSignIn? = nil
    ) {
        self.inventory = inventory
        self.tenants = tenants
        self.tokens = APITokenStore(sharingPoolOf: tenants)
        self.allocations = allocations
        self.policies = policies
        self.usage = usage
        self.admin = admin
        self.metricsText = metricsText
        self.readinessProblem = readinessProblem
        self.logger = logger
        self.rateLimiter = rateLimiter
        self.authFailureLimiter = RateLimiter(limit: authFailureLimit)
        self.webhooks = WebhookStore(sharingPoolOf: tenants)
        self.queuePositions = QueuePositionStore(sharingPoolOf: allocations, starvationLimit: starvationLimit)
        self.shares = ShareStore(sharingPoolOf: tenants)
        self.eventFeed = EventFeedStore(sharingPoolOf: tenants)
        self.eventHub = EventHub(feed: eventFeed, logger: logger, streamsPerTenant: limits[.streamsPerTenant])
        self.webhookURLs = webhookURLs
        self.limits = limits
        self.openID = openID
    }
}

/// Who is calling.
enum Principal: Sendable {
    case admin
    case tenant(Tenant)
}

struct RequestContext: Sendable {
    var principal: Principal?
    /// Who is calling, as the audit trail and logs name them; nil on routes without a token.
    var caller: Caller?
    var requestId: String
    var services: BrokerServices

    var tenant: Tenant {
        get throws {
            guard case .tenant(let tenant) = principal else {
                throw Problem.forbidden("this endpoint is for tenant tokens")
            }
            return tenant
        }
    }

    /// The ledger's `actor` for changes made by this request.
    var actor: String {
        switch principal {
        case .admin: "admin"
        case .tenant(let tenant): "tenant:\(tenant.id)"
        case nil: "anonymous"
        }
    }
}

typealias RouteHandler = @Sendable (HTTPRequest, RequestContext) async throws -> HTTPResponse

/// A handler run on the HTTP server's thread (`RouteBuilder.addSynchronous`): no
/// authentication, no I/O, never blocks.
typealias SynchronousRouteHandler = @Sendable (HTTPRequest, RequestContext) throws -> HTTPResponse

public enum BrokerAPI {
    /// The router with every endpoint of `openapi/openapi.yaml`.
    public static func router(services: BrokerServices) -> Router {
        var builder = RouteBuilder(services: services)
        SystemRoutes.register(&builder)
        InventoryRoutes.register(&builder)
        TenantRoutes.register(&builder)
        AllocationRoutes.register(&builder)
        AdminAllocationRoutes.register(&builder)
        PolicyRoutes.register(&builder)
        SizingRoutes.register(&builder)
        ManifestRoutes.register(&builder)
        WebhookRoutes.register(&builder)
        EventRoutes.register(&builder)
        HistoryRoutes.register(&builder)
        UsageRoutes.register(&builder)
        ShareRoutes.register(&builder)
        TokenRoutes.register(&builder)
        PreemptionRoutes.register(&builder)
        ReportRoutes.register(&builder)
        return builder.router
    }

    /// What the HTTP server answers on its own (400, 404, 405, 413, 414, 431), as problem+json.
    /// They carry `X-Request-Id` like every routed answer: the client's sane id, else a new one.
    public static let errorResponder: HTTPErrorResponder = { error, request in
        let ids = RequestIds.shared
        let requestId = request.map(ids.id(for:)) ?? ids.next()
        var response = serverProblem(error, request, requestId)
        response.headers.replaceOrAdd("X-Request-Id", requestId)
        return response
    }

    private static func serverProblem(_ error: HTTPServerError, _ request: HTTPRequest?, _ requestId: String) -> HTTPResponse {
        switch error {
        case .badRequest(let reason):
            return Problem(status: 400, code: .invalidRequest, title: "Bad request", detail: reason)
                .response(requestId: requestId)
        case .notFound:
            return Problem.notFound("no such endpoint: \(request?.path ?? "")").response(requestId: requestId)
        case .methodNotAllowed(let allowed):
            return Problem(
                status: 405, code: .methodNotAllowed, title: "Method not allowed",
                detail: "\(request?.method ?? "this method") is not allowed here; allowed: \(allowed.joined(separator: ", "))",
                allow: allowed
            ).response(requestId: requestId)
        case .payloadTooLarge(let limit):
            return Problem(
                status: 413, code: .payloadTooLarge, title: "Payload too large",
                detail: "request bodies are limited to \(limit) bytes"
            ).response(requestId: requestId)
        case .uriTooLong:
            return Problem(
                status: 414, code: .invalidRequest, title: "URI too long",
                detail: "the request target is too long or has too many query parameters"
            ).response(requestId: requestId)
        case .requestHeaderFieldsTooLarge:
            return Problem(
                status: 431, code: .invalidRequest, title: "Request header fields too large",
                detail: "the request headers are too large"
            ).response(requestId: requestId)
        case .shuttingDown:
            return Problem.unavailable("the broker is shutting down").response(requestId: requestId)
        case .internalError:
            return Problem.internalError.response(requestId: requestId)
        }
    }
}

/// A route's request counter and duration timer per status, made once and reused:
/// asking the metrics factory on every request costs a lookup under its lock.
final class RouteMetrics: Sendable {
    let method: String
    let route: String
    /// Owns every recorder made.
    private let byStatus = Mutex<[Int: Recorder]>([:])
    /// The recorder of the first status recorded (most routes nearly always answer
    /// one), as an unretained pointer read without a lock (0 until then); `byStatus`
    /// keeps it alive. Not an `AtomicLazyReference`: its `load` is not specialised
    /// across modules and cost more than the lock.
    private let first = Atomic<UInt>(0)

    final class Recorder: Sendable {
        let status: Int
        let counter: Counter
        let timer: Timer

        init(status: Int, counter: Counter, timer: Timer) {
            self.status = status
            self.counter = counter
            self.timer = timer
        }

        func record(_ nanoseconds: Int64) {
            counter.increment()
            timer.recordNanoseconds(nanoseconds)
        }
    }

    init(method: String, route: String) {
        self.method = method
        self.route = route
    }

    func record(status: Int, nanoseconds: Int64) {
        if let first = UnsafeRawPointer(bitPattern: first.load(ordering: .acquiring)) {
            // Without retaining it: every HTTP thread shares it.
            let recorded = Unmanaged<Recorder>.fromOpaque(first)._withUnsafeGuaranteedRef { recorder in
                guard recorder.status == status else { return false }
                recorder.record(nanoseconds)
                return true
            }
            if recorded { return }
        }
        let recorder = byStatus.withLock { cache in
            if let made = cache[status] { return made }
            let dimensions = [("method", method), ("route", route), ("status", String(status))]
            let made = Recorder(
                status: status,
                counter: Counter(label: "http_requests_total", dimensions: dimensions),
                timer: Timer(label: "http_request_duration_seconds", dimensions: dimensions))
            cache[status] = made
            return made
        }
        let bits = UInt(bitPattern: Unmanaged.passUnretained(recorder).toOpaque())
        _ = first.compareExchange(expected: 0, desired: bits, ordering: .releasing)
        recorder.record(nanoseconds)
    }
}

/// New request ids: UUIDs (RFC 9562 version 8, lowercase) made of a random prefix
/// drawn once per process and a counter, so that a request needs neither a random
/// draw nor Foundation's `UUID`. Unique within a process; across processes as
/// likely as 74 random bits make it.
final class RequestIds: Sendable {
    /// The process's ids. Per-request code keeps a reference to it: reading a
    /// global costs a lazy-initialisation check (`swift_once`) on every use.
    static let shared = RequestIds()

    /// The first 24 characters, "xxxxxxxx-xxxx-8xxx-yxxx-": 74 random bits with the
    /// version (8) and variant (0b10) bits of a UUID. The last 12 hex digits (the
    /// 48-bit `node` field) are the counter.
    private let prefix: [UInt8]
    private let counter = Atomic<UInt64>(0)
    private static let hexDigits: StaticString = "0123456789abcdef"

    private init() {
        var generator = SystemRandomNumberGenerator()
        let high = (generator.next() as UInt64) & ~0xF000 | 0x8000
        let clockSequence = (generator.next() as UInt64) & 0x3FFF | 0x8000
        var text: [UInt8] = []
        func put(_ value: UInt64, digits: Int) {
            for shift in stride(from: (digits - 1) * 4, through: 0, by: -4) {
                text.append(Self.hexDigits.utf8Start[Int(value >> UInt64(shift) & 0xF)])
            }
            text.append(UInt8(ascii: "-"))
        }
        put(high >> 32, digits: 8)
        put(high >> 16, digits: 4)
        put(high, digits: 4)
        put(clockSequence, digits: 4)
        prefix = text
    }

    func next() -> String {
        let count = counter.wrappingAdd(1, ordering: .relaxed).newValue
        return String(unsafeUninitializedCapacity: 36) { buffer in
            _ = prefix.withUnsafeBufferPointer { buffer.initialize(from: $0) }
            for index in 0..<12 {
                buffer[24 + index] = Self.hexDigits.utf8Start[Int(count >> UInt64(44 - 4 * index) & 0xF)]
            }
            return 36
        }
    }

    /// The client's `X-Request-Id` when it is a sane token, else a new one.
    func id(for request: HTTPRequest) -> String {
        if let given = request.headers["X-Request-Id"], (1...128).contains(given.utf8.count),
            given.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f })
        {
            return given
        }
        return next()
    }
}

/// The steps every routed request goes through around its handler, whether it runs
/// async or on the HTTP thread: request id, error mapping, `X-Request-Id`,
/// metrics and one log line.
struct RouteSteps: Sendable {
    let services: BrokerServices
    let metrics: RouteMetrics
    /// Whether the log line is written, read once: the services' logger is a
    /// value that nothing changes after start-up.
    let logsRequests: Bool
    let ids = RequestIds.shared

    init(services: BrokerServices, method: String, pattern: String) {
        self.services = services
        metrics = RouteMetrics(method: method, route: pattern)
        logsRequests = services.logger.logLevel <= .info
    }

    /// Before the handler.
    struct Started {
        var requestId: String
        /// `DispatchTime` nanoseconds: plain integers, cheaper than `ContinuousClock`'s `Duration`s.
        var at: UInt64
    }

    func start(_ request: HTTPRequest) -> Started {
        Started(requestId: ids.id(for: request), at: DispatchTime.now().uptimeNanoseconds)
    }

    /// The answer to an error thrown by authentication or the handler.
    func response(to error: any Error, _ started: Started) -> HTTPResponse {
        if case StoreError.budgetExceeded(let shortfall) = error {
            // Not per tenant: one series per budget kind.
            Counter(label: "budget_refusals_total", dimensions: [("budget", shortfall.budget)]).increment()
        }
        if let problem = Problem.from(error) {
            return problem.response(requestId: started.requestId)
        }
        services.logger.error(
            "request failed", metadata: ["request.id": "\(started.requestId)", "error": "\(String(reflecting: error))"])
        return Problem.internalError.response(requestId: started.requestId)
    }

    /// After the handler: adds `X-Request-Id`, records metrics, logs.
    func finish(_ request: HTTPRequest, _ started: Started, _ response: HTTPResponse) -> HTTPResponse {
        var response = response
        response.headers.replaceOrAdd("X-Request-Id", started.requestId)
        let nanoseconds = Int64(clamping: DispatchTime.now().uptimeNanoseconds &- started.at)
        metrics.record(status: response.status, nanoseconds: nanoseconds)
        guard logsRequests else { return response }
        services.logger.info(
            "\(metrics.method) \(request.path) \(response.status)",
            metadata: [
                "request.id": "\(started.requestId)", "http.route": "\(metrics.route)",
                "http.duration_ms": "\(Double(nanoseconds) / 1e6)",
            ])
        return response
    }
}

/// Registers routes with the cross-cutting steps every request goes through:
/// request id, authentication, error mapping, metrics and one log line.
struct RouteBuilder {
    let services: BrokerServices
    var router = Router(errorResponder: BrokerAPI.errorResponder)

    init(services: BrokerServices) {
        self.services = services
    }

    /// `method` and `pattern` must have their row in `RouteRoles.table`.
    mutating func add(_ method: String, _ pattern: String, _ handler: @escaping RouteHandler) {
        guard let row = RouteRoles.row(method, pattern) else {
            preconditionFailure("\(method) \(pattern) has no row in RouteRoles.table: say who may call it")
        }
        let steps = RouteSteps(services: services, method: method, pattern: pattern)
        router.add(method, pattern) { request in
            let started = steps.start(request)
            var response: HTTPResponse
            do {
                let who = try await Authentication.authenticate(request, row, steps.services)
                var request = request
                try RepeatedQuery.normalize(&request)
                response = try await handler(
                    request,
                    RequestContext(
                        principal: who?.principal, caller: who?.caller, requestId: started.requestId,
                        services: steps.services))
            } catch {
                response = steps.response(to: error, started)
            }
            return steps.finish(request, started, response)
        }
    }

    /// A route whose handler runs on the HTTP server's thread, with no task hop
    /// (`Router.addSynchronous`): only for cheap handlers that need no token, do no
    /// I/O and never block. Same request id, error mapping, metrics and log line as `add`.
    mutating func addSynchronous(_ method: String, _ pattern: String, _ handler: @escaping SynchronousRouteHandler) {
        let steps = RouteSteps(services: services, method: method, pattern: pattern)
        router.addSynchronous(method, pattern) { request in
            let started = steps.start(request)
            var response: HTTPResponse
            do {
                var request = request
                try RepeatedQuery.normalize(&request)
                response = try handler(
                    request, RequestContext(principal: nil, caller: nil, requestId: started.requestId, services: steps.services))
            } catch {
                response = steps.response(to: error, started)
            }
            return steps.finish(request, started, response)
        }
    }

}
