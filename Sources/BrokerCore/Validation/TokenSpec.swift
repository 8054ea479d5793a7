import JSON

/// `POST /v1/tokens` `{"name", "role"?, "scopes"?, "expiresInSeconds"?}`: a named token of
/// the caller's tenant. Without a role it is a `member`; scopes narrow the role further.
public struct TokenSpec: Sendable, Equatable {
    public var name: String
    public var role: Role
    public var scopes: [TokenScope]?
    public var expiresInSeconds: Int?

    public init(name: String, role: Role, scopes: [TokenScope]?, expiresInSeconds: Int?) {
        self.name = name
        self.role = role
        self.scopes = scopes
        self.expiresInSeconds = expiresInSeconds
    }

    /// At most a year: a token meant to outlive that should be renewed on purpose.
    public static let maxLifetimeSeconds = 366 * 86_400

    public static func parse(_ json: JSONValue) throws(ValidationFailure) -> TokenSpec {
        let errors = FieldErrorCollector()
        var result: TokenSpec?
        if let r = errors.object(json) {
            let name = r.string("name", required: true, maxLength: 63, pattern: .policyName)
            let role = r.enumeration("role", Role.self)
            if role == .admin { errors.add(r.field("role"), "a tenant's token cannot be admin") }
            let words = r.stringArray("scopes", maxItems: TokenScope.allCases.count)
            var scopes: [TokenScope] = []
            for (index, word) in (words ?? []).enumerated() {
                if let scope = TokenScope(rawValue: word) {
                    scopes.append(scope)
                } else {
                    errors.add(
                        FieldPath.index(r.field("scopes"), index),
                        "must be one of \(TokenScope.allCases.map(\.rawValue).joined(separator: ", "))")
                }
            }
            let lifetime = r.integer("expiresInSeconds", in: 60...maxLifetimeSeconds)
            r.finish()
            if let name {
                result = TokenSpec(name: name, role: role ?? .member, scopes: words == nil ? nil : scopes, expiresInSeconds: lifetime)
            }
        }
        return try errors.result(result)
    }
}
