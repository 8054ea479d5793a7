import BrokerCore
import BrokerStore
import Foundation
import MicroHTTP

enum Authentication {
    /// Who is calling, for a route of `row`: nil for a route that needs no token; 401
    /// without a valid credential, 403 for a caller outside the row, 429 past the tenant's
    /// request rate.
    static func authenticate(_ request: HTTPRequest, _ row: RouteRoles.Row, _ services: BrokerServices) async throws
        -> (principal: Principal, caller: Caller)?
    {
        guard let roles = row.roles else { return nil }
        guard let header = request.headers["Authorization"], header.lowercased().hasPrefix("bearer ") else {
            throw Problem.unauthorized
        }
        let token = String(header.dropFirst("bearer ".count).trimmingOptionalWhitespace())
        let isJWT = services.openID != nil && SignedJWT.looksLikeJWT(token)
        guard !token.isEmpty, token.utf8.count <= (isJWT ? 16_384 : 512) else { throw Problem.unauthorized }
        let address = request.remoteAddress ?? "unknown"
        let principal: Principal
        let caller: Caller
        if services.admin.accepts(token) {
            (principal, caller) = (.admin, .admin)
        } else if isJWT, let openID = services.openID {
            if let wait = services.authFailureLimiter.wait(address) { throw tooManyFailures(wait) }
            do {
                (principal, caller) = try await openID.caller(token, services)
            } catch let refusal as Problem where refusal.status == 401 {
                _ = services.authFailureLimiter.acquire(address)
                throw refusal
            }
        } else if token.hasPrefix(APITokenStore.secretPrefix), let named = try await named(token, from: address, services) {
            let scopes = named.token.scopes.map(Set.init)
            (principal, caller) = (
                .tenant(named.tenant),
                Caller(credential: .token(named.token.id.uuid), tenantId: named.tenant.id.uuid, role: named.token.role, scopes: scopes)
            )
        } else if !token.hasPrefix(APITokenStore.secretPrefix), let tenant = try await tenant(token, from: address, services) {
            (principal, caller) = (.tenant(tenant), .tenantToken(tenant.id.uuid))
        } else {
            if let wait = services.authFailureLimiter.acquire(address) { throw tooManyFailures(wait) }
            throw Problem.unauthorized
        }
        guard caller.may(roles, scope: row.scope) else { throw RouteRoles.refusal(caller, row) }
        if case .tenant(let tenant) = principal, let limiter = services.rateLimiter,
            let wait = limiter.acquire(tenant.id.description)
        {
            throw Problem(
                status: 429, code: .rateLimited, title: "Too many requests",
                detail: "this tenant is limited to \(limiter.limit.rate) requests per second (burst \(Int(limiter.limit.burst)))",
                retryAfterSeconds: wait)
        }
        return (principal, caller)
    }

    /// The tenant of `token`: from the cache, else looked up unless `address`
    /// spent its failed authentications (429 then, without a lookup).
    private static func tenant(_ token: String, from address: String, _ services: BrokerServices) async throws -> Tenant? {
        if let cached = services.tenants.cached(token: token) { return cached }
        if let wait = services.authFailureLimiter.wait(address) { throw tooManyFailures(wait) }
        return try await services.tenants.authenticate(token: token)
    }

    /// The same for a named token (`/v1/tokens`).
    private static func named(_ secret: String, from address: String, _ services: BrokerServices) async throws -> NamedToken? {
        if let cached = services.tokens.cached(secret: secret) { return cached }
        if let wait = services.authFailureLimiter.wait(address) { throw tooManyFailures(wait) }
        return try await services.tokens.authenticate(secret: secret)
    }

    private static func tooManyFailures(_ wait: Int) -> Problem {
        Problem(
            status: 429, code: .rateLimited, title: "Too many requests",
            detail: "too many failed authentications from this address", retryAfterSeconds: wait)
    }
}
