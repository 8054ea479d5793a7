import BrokerCore
import BrokerStore
import Foundation

/// Bearer JWTs of OpenID Connect issuers (`serve --oidc-issuer`): verified by `verifier`,
/// given a tenant and a role by `claimMap`.
public struct OpenIDSignIn: Sendable {
    public let verifier: OpenIDVerifier
    public let claimMap: ClaimMap

    public init(verifier: OpenIDVerifier, claimMap: ClaimMap) {
        self.verifier = verifier
        self.claimMap = claimMap
    }

    /// The caller a verified JWT stands for: 401 naming why a token is refused, 403 for an
    /// identity no rule maps.
    func caller(_ token: String, _ services: BrokerServices) async throws -> (principal: Principal, caller: Caller) {
        let identity: OpenIDIdentity
        do {
            identity = try await verifier.verify(token)
        } catch {
            throw Problem(status: 401, code: .unauthorized, title: "Unauthorized", detail: error.detail)
        }
        guard let rule = claimMap.resolve(identity.claims) else {
            throw Problem.forbidden(
                "signed in as '\(identity.subject)' of \(identity.issuer), but no --oidc-claim-map rule gives this identity a role")
        }
        let caller = Caller(
            credential: .openID(issuer: identity.issuer, subject: identity.subject), tenantId: rule.tenantId, role: rule.role)
        guard let tenantId = rule.tenantId else { return (.admin, caller) }
        do {
            return (.tenant(try await services.tenants.get(id: tenantId)), caller)
        } catch StoreError.notFound {
            throw Problem.forbidden("the --oidc-claim-map rule for this identity names a tenant that does not exist")
        }
    }
}
