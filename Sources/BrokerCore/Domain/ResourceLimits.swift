/// How much of each thing a tenant can hold open or create, so that no tenant can take
/// what the broker or the database has for everyone. Set by the admin (`serve --limit
/// name=value`); each refusal names its limit. A tenant has one token at a time, so a
/// limit per tenant is also a limit per token; the admin token counts as one tenant.
public struct ResourceLimits: Sendable, Equatable {
    /// One limit: its name in `--limit`, in refusals and in the README's table.
    public enum Name: String, CaseIterable, Sendable {
        /// Event streams open at once on one broker process.
        case streamsPerTenant = "streams-per-tenant"
        case webhookEndpointsPerTenant = "webhook-endpoints-per-tenant"
        /// Console sessions signed in at once on one broker process.
        case sessionsPerTenant = "sessions-per-tenant"
        /// Named tokens (`/v1/tokens`) a tenant holds, expired ones included until revoked.
        case tokensPerTenant = "tokens-per-tenant"
        /// Named placement policies (`PUT /v1/policies/{name}`).
        case policiesPerTenant = "policies-per-tenant"
        /// Allocations waiting for capacity or budget (`queue: true`), across brokers.
        case pendingAllocationsPerTenant = "pending-allocations-per-tenant"

        /// What the limit counts, for its refusal ("this tenant has 25 webhook endpoints").
        public var counted: String {
            switch self {
            case .streamsPerTenant: "event streams open on this broker; close one first"
            case .webhookEndpointsPerTenant: "webhook endpoints; delete one first"
            case .sessionsPerTenant: "console sessions on this broker; sign one out first"
            case .tokensPerTenant: "named tokens; revoke one first"
            case .policiesPerTenant: "policies; delete one first"
            case .pendingAllocationsPerTenant: "pending allocations; wait until one is admitted or withdraw one"
            }
        }

        /// Held open (frees when the tenant lets go, or a pending allocation is admitted or
        /// times out: 429 and retry) rather than created (deleted by the tenant, so 403 like
        /// a quota).
        public var heldOpen: Bool { self == .streamsPerTenant || self == .sessionsPerTenant || self == .pendingAllocationsPerTenant }

        public var defaultValue: Int {
            switch self {
            case .streamsPerTenant: 64
            case .webhookEndpointsPerTenant: 25
            case .sessionsPerTenant: 20
            case .tokensPerTenant: 50
            case .policiesPerTenant: 100
            case .pendingAllocationsPerTenant: 200
            }
        }
    }

    private var values: [Name: Int] = [:]

    public init() {}

    public subscript(name: Name) -> Int {
        get { values[name] ?? name.defaultValue }
        set { values[name] = newValue }
    }

    /// Applies `name=value` settings (from `--limit`, or comma-separated from the environment).
    public mutating func apply(_ setting: String) throws(ValidationFailure) {
        let parts = setting.split(separator: "=", maxSplits: 1).map(String.init)
        let known = Name.allCases.map(\.rawValue).joined(separator: ", ")
        guard parts.count == 2, let name = Name(rawValue: parts[0]) else {
            throw ValidationFailure(field: "limit", message: "expected name=value with a name of \(known), got '\(setting)'")
        }
        guard let value = Int(parts[1]), value >= 1 else {
            throw ValidationFailure(field: "limit", message: "\(name.rawValue) must be a whole number, 1 or more, got '\(parts[1])'")
        }
        self[name] = value
    }
}
