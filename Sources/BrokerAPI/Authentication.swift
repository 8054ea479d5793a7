import BrokerCore
import BrokerStore
import Foundation
import MicroHTTP

enum Authentication {
    static func authenticate(_ request: HTTPRequest, _ access: Access, _ services: BrokerServices) async throws -> Principal? {
        if access == .none { return nil }
        guard let header = request.headers["Authorization"], header.lowercased().hasPrefix("bearer ") else {
            throw Problem.unauthorized
        }
        let token = String(header.dropFirst("bearer ".count).trimmingOptionalWhitespace())
        guard !token.isEmpty, token.utf8.count <= 512 else { throw Problem.unauthorized }
        let principal: Principal
        let address = request.remoteAddress ?? "unknown"
        if services.admin.accepts(token) {
            principal = .admin
        } else if let tenant = try await tenant(token, from: address, services) {
            principal = .tenant(tenant)
        } else {
            if let wait = services.authFailureLimiter.acquire(address) { throw tooManyFailures(wait) }
            throw Problem.unauthorized
        }
        switch (access, principal) {
        case (.admin, .tenant):
            throw Problem.forbidden("this endpoint needs the admin token")
        case (.tenant, .admin):
            throw Problem.forbidden("this endpoint needs a tenant token: allocations and policies belong to tenants")
        default:
            break
        }
        if case .tenant(let tenant) = principal, let limiter = services.rateLimiter,
            let wait = limiter.acquire(tenant.id.description)
        {
            throw Problem(
                status: 429, code: .rateLimited, title: "Too many requests",
                detail: "this tenant is limited to \(limiter.limit.rate) requests per second (burst \(Int(limiter.limit.burst)))",
                retryAfterSeconds: wait)
        }
        return principal
    }

    /// The tenant of `token`: from the cache, else looked up unless `address`
    /// spent its failed authentications (429 then, without a lookup).
    private static func tenant(_ token: String, from address: String, _ services: BrokerServices) async throws -> Tenant? {
        if let cached = services.tenants.cached(token: token) { return cached }
        if let wait = services.authFailureLimiter.wait(address) { throw tooManyFailures(wait) }
        return try await services.tenants.authenticate(token: token)
    }

    private static func tooManyFailures(_ wait: Int) -> Problem {
        Problem(
            status: 429, code: .rateLimited, title: "Too many requests",
            detail: "too many failed authentications from this address", retryAfterSeconds: wait)
    }
}
