import Foundation

/// Who is calling, once authenticated: what a route's roles are checked against and what
/// an audit record names as "who". A plain value, the same whatever the credential was.
public struct Caller: Sendable, Equatable {
    public enum Credential: Sendable, Equatable {
        /// The platform admin token of the configuration.
        case adminToken
        /// A tenant's own token (made with the tenant, rotated by the admin).
        case tenantToken
        /// A named token of a tenant (`/v1/tokens`), by its id.
        case token(UUID)
        /// A JSON Web Token of an OpenID Connect issuer, by the issuer and its `sub`.
        case openID(issuer: String, subject: String)
    }

    public var credential: Credential
    /// nil for the admin.
    public var tenantId: UUID?
    public var role: Role
    /// nil: all the role allows; otherwise only routes stating one of these scopes.
    public var scopes: Set<TokenScope>?

    public init(credential: Credential, tenantId: UUID?, role: Role, scopes: Set<TokenScope>? = nil) {
        self.credential = credential
        self.tenantId = tenantId
        self.role = role
        self.scopes = scopes
    }

    public static let admin = Caller(credential: .adminToken, tenantId: nil, role: .admin)

    /// A tenant's own token acts as its tenant-admin.
    public static func tenantToken(_ tenantId: UUID) -> Caller {
        Caller(credential: .tenantToken, tenantId: tenantId, role: .tenantAdmin)
    }

    /// One word naming the credential, for logs and audit records: `admin`,
    /// `tenant:<tenant id>`, `token:<token id>` or `oidc:<issuer>#<subject>`.
    public var who: String {
        switch credential {
        case .adminToken: "admin"
        case .tenantToken: "tenant:\(tenantId.map(\.uuidString) ?? "")".lowercased()
        case .token(let id): "token:\(id.uuidString.lowercased())"
        case .openID(let issuer, let subject): "oidc:\(issuer)#\(subject)"
        }
    }

    /// Whether this caller may call a route open to `roles` (and, for a scoped caller,
    /// stating `scope`; a route stating none is closed to scoped callers).
    public func may(_ roles: Set<Role>, scope: TokenScope?) -> Bool {
        guard roles.contains(role) else { return false }
        guard let scopes else { return true }
        return scope.map(scopes.contains) ?? false
    }
}
