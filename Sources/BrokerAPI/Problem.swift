import BrokerCore
import BrokerStore
import Foundation
import JSON
import MicroHTTP
import PostgresClient

/// An error answer of the API: one status and one machine `code` per kind of
/// failure, rendered as application/problem+json.
public struct Problem: Error, Sendable {
    public var status: Int
    public var code: ProblemCode
    public var title: String
    public var detail: String
    public var errors: [FieldError]?
    public var decisions: [PlacementDecision]?
    public var retryAfterSeconds: Int?
    public var allow: [String]?
    /// Extension members (RFC 9457 section 3.2), such as what remains of a budget.
    public var members: [String: JSONValue] = [:]

    public init(
        status: Int, code: ProblemCode, title: String, detail: String, errors: [FieldError]? = nil,
        decisions: [PlacementDecision]? = nil, retryAfterSeconds: Int? = nil, allow: [String]? = nil
    ) {
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.errors = errors
        self.decisions = decisions
        self.retryAfterSeconds = retryAfterSeconds
        self.allow = allow
    }

    static func invalidRequest(_ detail: String) -> Problem {
        Problem(status: 400, code: .invalidRequest, title: "Invalid request", detail: detail)
    }
    static func validation(_ errors: [FieldError]) -> Problem {
        let summary = errors.prefix(5).map { "\($0.field): \($0.message)" }.joined(separator: "; ")
        return Problem(
            status: 422, code: .validationFailed, title: "Validation failed", detail: summary, errors: errors)
    }
    static let unauthorized = Problem(
        status: 401, code: .unauthorized, title: "Unauthorized",
        detail: "a valid 'Authorization: Bearer <token>' header is required")
    static func forbidden(_ detail: String) -> Problem {
        Problem(status: 403, code: .forbidden, title: "Forbidden", detail: detail)
    }
    static func notFound(_ detail: String) -> Problem {
        Problem(status: 404, code: .notFound, title: "Not found", detail: detail)
    }
    static func conflict(_ detail: String) -> Problem {
        Problem(status: 409, code: .conflict, title: "Conflict", detail: detail)
    }
    static func unsupportedMediaType(_ detail: String) -> Problem {
        Problem(status: 415, code: .unsupportedMediaType, title: "Unsupported media type", detail: detail)
    }
    static func unavailable(_ detail: String) -> Problem {
        Problem(
            status: 503, code: .unavailable, title: "Service unavailable", detail: detail, retryAfterSeconds: 2)
    }
    /// A resource limit of `ResourceLimits` reached: 429 for what frees when the tenant
    /// lets go of it (streams, sessions), 403 for what it must delete (like a quota).
    static func limitExceeded(_ name: ResourceLimits.Name, _ limit: Int) -> Problem {
        var problem = Problem(
            status: name.heldOpen ? 429 : 403, code: .limitExceeded, title: "Limit exceeded",
            detail: "this tenant has \(limit) \(name.counted) (limit \(name.rawValue))", retryAfterSeconds: name.heldOpen ? 5 : nil)
        problem.members = ["limitName": .string(name.rawValue), "limit": .number(Double(limit))]
        return problem
    }
    static let internalError = Problem(
        status: 500, code: .internalError, title: "Internal server error",
        detail: "the broker failed unexpectedly; the failure is logged")

    /// The one place where errors from the store, the database and the core become answers.
    static func from(_ error: any Error) -> Problem? {
        switch error {
        case let problem as Problem:
            return problem
        case let failure as ValidationFailure:
            return .validation(failure.errors)
        case let store as StoreError:
            switch store {
            case .notFound(let detail): return .notFound(detail)
            case .conflict(let detail): return .conflict(detail)
            case .insufficientCapacity(let detail, let decisions):
                return Problem(
                    status: 409, code: .insufficientCapacity, title: "Insufficient capacity", detail: detail,
                    decisions: decisions)
            case .quotaExceeded(let detail):
                return Problem(status: 403, code: .quotaExceeded, title: "Quota exceeded", detail: detail)
            case .budgetExceeded(let shortfall):
                // 403 like quota_exceeded: a limit the tenant's admin set, not a conflict of this request.
                var problem = Problem(status: 403, code: .budgetExceeded, title: "Budget exceeded", detail: shortfall.detail)
                problem.members = shortfall.members
                return problem
            case .idempotencyKeyReused:
                return Problem(
                    status: 422, code: .idempotencyKeyReused, title: "Idempotency key reused",
                    detail: "this Idempotency-Key was used with a different request body")
            case .unavailable(let detail): return .unavailable(detail)
            case .limitExceeded(let name, let limit): return .limitExceeded(name, limit)
            }
        case let pg as PostgresError where pg.isConnectionProblem:
            return .unavailable("the database is unreachable; retry shortly")
        default:
            return nil
        }
    }

    func response(requestId: String?) -> HTTPResponse {
        var headers = HTTPHeaders([("Content-Type", "application/problem+json")])
        if let retryAfterSeconds { headers.add("Retry-After", String(retryAfterSeconds)) }
        if let allow { headers.add("Allow", allow.joined(separator: ", ")) }
        return HTTPResponse(status: status, headers: headers, body: body(requestId: requestId).encoded())
    }

    /// The problem+json document (also what a dry run says the real request would answer).
    func body(requestId: String?) -> JSONValue {
        var body = members
        body.merge([
            "type": .string(code.typeURI),
            "title": .string(title),
            "status": .number(Double(status)),
            "detail": .string(detail),
            "code": .string(code.rawValue),
        ]) { _, standard in standard }
        if let requestId { body["requestId"] = .string(requestId) }
        if let errors {
            body["errors"] = .array(errors.map { .object(["field": .string($0.field), "message": .string($0.message)]) })
        }
        if let decisions {
            body["decisions"] = .array(decisions.map {
                .object(["region": .string($0.region), "replicas": .number(Double($0.replicas)), "reason": .string($0.reason)])
            })
        }
        return .object(body)
    }
}
