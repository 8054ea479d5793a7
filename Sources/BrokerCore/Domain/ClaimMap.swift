import Foundation
import JSON

/// How an OpenID Connect identity becomes a tenant and a role: rules of `serve
/// --oidc-claim-map`, `CLAIM=VALUE:TENANT:ROLE`, tried in order; the first whose claim
/// holds the value (equal to it, or an array containing it) wins. TENANT is a tenant id,
/// or `-` for the admin role. `groups=ml-admins:0190…:tenant-admin`.
public struct ClaimMap: Sendable, Equatable {
    public struct Rule: Sendable, Equatable {
        public var claim: String
        public var value: String
        /// nil: the admin role, which belongs to no tenant.
        public var tenantId: UUID?
        public var role: Role
    }

    public var rules: [Rule]

    public init(_ rules: [Rule] = []) {
        self.rules = rules
    }

    public static func rule(_ text: String) throws(ValidationFailure) -> Rule {
        func refuse(_ why: String) -> ValidationFailure {
            ValidationFailure(field: "oidc-claim-map", message: "\(why) in '\(text)'; expected CLAIM=VALUE:TENANT:ROLE")
        }
        guard let equals = text.firstIndex(of: "="), equals != text.startIndex else { throw refuse("no CLAIM=") }
        let claim = String(text[..<equals])
        let parts = text[text.index(after: equals)...].split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count >= 3 else { throw refuse("not VALUE:TENANT:ROLE") }
        let value = parts.dropLast(2).joined(separator: ":")
        guard !value.isEmpty else { throw refuse("an empty VALUE") }
        guard let role = Role(rawValue: String(parts[parts.count - 1])) else {
            throw refuse("ROLE not one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let tenant = String(parts[parts.count - 2])
        if role == .admin {
            guard tenant == "-" else { throw refuse("the admin role with a tenant (write - as TENANT)") }
            return Rule(claim: claim, value: value, tenantId: nil, role: role)
        }
        guard let tenantId = UUID(uuidString: tenant) else { throw refuse("TENANT not a tenant id") }
        return Rule(claim: claim, value: value, tenantId: tenantId, role: role)
    }

    /// The first rule the claims satisfy.
    public func resolve(_ claims: JSONValue) -> Rule? {
        rules.first { rule in
            switch claims[rule.claim] {
            case .string(let value)?: value == rule.value
            case .array(let values)?: values.contains(.string(rule.value))
            default: false
            }
        }
    }
}
