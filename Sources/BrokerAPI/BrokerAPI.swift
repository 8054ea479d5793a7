import BrokerCore
import BrokerStore
import Foundation
import Logging
import Metrics
import MicroHTTP
import Synchronization

/// Everything the routes need, built once by the executable.
public struct BrokerServices: Sendable {
    public var inventory: InventoryStore
    public var tenants: TenantStore
    public var allocations: AllocationStore
    public var policies: PolicyStore
    public var adminToken: String
    /// Prometheus text exposition of every metric, for `GET /metrics`.
    public var metricsText: @Sendable () -> String
    /// nil when ready; otherwise why not (database unreachable, migrations behind).
    public var readinessProblem: @Sendable () async -> String?
    public var logger: Logger
    /// Per-tenant request limit; nil = unlimited.
    public var rateLimiter: RateLimiter?

    public init(
        inventory: InventoryStore, tenants: TenantStore, allocations: AllocationStore, policies: PolicyStore,
        adminToken: String, metricsText: @escaping @Sendable () -> String,
        readinessProblem: @escaping @Sendable () async -> String?, logger: Logger, rateLimiter: RateLimiter? = nil
    ) {
        self.inventory = inventory
        self.tenants = tenants
        self.allocations = allocations
        self.policies = policies
        self.adminToken = adminToken
        self.metricsText = metricsText
        self.readinessProblem = readinessProblem
        self.logger = logger
        self.rateLimiter = rateLimiter
    }
}

/// Who is calling.
enum Principal: Sendable {
    case admin
    case tenant(Tenant)
}

/// Who may call a route.
enum Access: Sendable {
    case none, admin, tenant, anyToken
}

struct RequestContext: Sendable {
    var principal: Principal?
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

public enum BrokerAPI {
    /// The router with every endpoint of `openapi/openapi.yaml`.
    public static func router(services: BrokerServices) -> Router {
        var builder = RouteBuilder(services: services)
        SystemRoutes.register(&builder)
        InventoryRoutes.register(&builder)
        TenantRoutes.register(&builder)
        AllocationRoutes.register(&builder)
        PolicyRoutes.register(&builder)
        SizingRoutes.register(&builder)
        ManifestRoutes.register(&builder)
        return builder.router
    }

    /// What the HTTP server answers on its own (404, 405, 413, 431), as problem+json.
    /// They carry `X-Request-Id` like every routed answer: the client's sane id, else a new one.
    public static let errorResponder: HTTPErrorResponder = { error, request in
        let requestId = request.map(RouteBuilder.requestId) ?? UUID().uuidString.lowercased()
        var response = serverProblem(error, request, requestId)
        response.headers.replaceOrAdd("X-Request-Id", requestId)
        return response
    }

    private static func serverProblem(_ error: HTTPServerError, _ request: HTTPRequest?, _ requestId: String) -> HTTPResponse {
        switch error {
        case .notFound:
            return Problem.notFound("no such endpoint: \(request?.path ?? "")").response(requestId: requestId)
        case .methodNotAllowed(let allowed):
            return Problem(
                status: 405, code: "method_not_allowed", title: "Method not allowed",
                detail: "\(request?.method ?? "this method") is not allowed here; allowed: \(allowed.joined(separator: ", "))",
                allow: allowed
            ).response(requestId: requestId)
        case .payloadTooLarge(let limit):
            return Problem(
                status: 413, code: "payload_too_large", title: "Payload too large",
                detail: "request bodies are limited to \(limit) bytes"
            ).response(requestId: requestId)
        case .requestHeaderFieldsTooLarge:
            return Problem(
                status: 431, code: "invalid_request", title: "Request header fields too large",
                detail: "the request headers are too large"
            ).response(requestId: requestId)
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
    private let byStatus = Mutex<[Int: (Counter, Timer)]>([:])

    init(method: String, route: String) {
        self.method = method
        self.route = route
    }

    func record(status: Int, nanoseconds: Int64) {
        let (counter, timer) = byStatus.withLock { cache in
            if let made = cache[status] { return made }
            let dimensions = [("method", method), ("route", route), ("status", String(status))]
            let made = (
                Counter(label: "http_requests_total", dimensions: dimensions),
                Timer(label: "http_request_duration_seconds", dimensions: dimensions)
            )
            cache[status] = made
            return made
        }
        counter.increment()
        timer.recordNanoseconds(nanoseconds)
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

    mutating func add(_ method: String, _ pattern: String, _ access: Access, _ handler: @escaping RouteHandler) {
        let services = self.services
        let metrics = RouteMetrics(method: method, route: pattern)
        router.add(method, pattern) { request in
            let started = ContinuousClock.now
            let requestId = Self.requestId(request)
            var principal: Principal? = nil
            var response: HTTPResponse
            do {
                principal = try await Authentication.authenticate(request, access, services)
                response = try await handler(
                    request, RequestContext(principal: principal, requestId: requestId, services: services))
            } catch {
                if let problem = Problem.from(error) {
                    response = problem.response(requestId: requestId)
                } else {
                    services.logger.error(
                        "request failed", metadata: ["request.id": "\(requestId)", "error": "\(String(reflecting: error))"])
                    response = Problem.internalError.response(requestId: requestId)
                }
            }
            response.headers.replaceOrAdd("X-Request-Id", requestId)
            let elapsed = ContinuousClock.now - started
            let nanoseconds = Int64(elapsed / .nanoseconds(1))
            metrics.record(status: response.status, nanoseconds: nanoseconds)
            services.logger.info(
                "\(method) \(request.path) \(response.status)",
                metadata: [
                    "request.id": "\(requestId)", "http.route": "\(pattern)",
                    "http.duration_ms": "\(Double(nanoseconds) / 1e6)",
                ])
            return response
        }
    }

    /// The client's `X-Request-Id` when it is a sane token, else a new one.
    static func requestId(_ request: HTTPRequest) -> String {
        if let given = request.headers["X-Request-Id"], (1...128).contains(given.utf8.count),
            given.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f })
        {
            return given
        }
        return UUID().uuidString.lowercased()
    }
}
