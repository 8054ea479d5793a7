import BrokerCore

/// Who may call each route: the one table of roles and scopes. `RouteBuilder.add` reads
/// it for every route it registers (a route missing here stops the broker at start-up),
/// openapi.yaml states the same per operation (`x-roles`, `x-scope`; RoleTableTests keeps
/// the two equal), and a test calls every route with every role outside its row.
enum RouteRoles {
    /// A route's row: `roles` nil for routes that need no token; `scope` is what a
    /// scoped token must hold (nil: closed to scoped tokens).
    struct Row: Sendable {
        var method: String
        var pattern: String
        var roles: Set<Role>?
        var scope: TokenScope?
    }

    private static let admin: Set<Role> = [.admin]
    private static let everyone = Set(Role.allCases)
    private static let allocating: Set<Role> = [.tenantAdmin, .member]
    private static let reading: Set<Role> = [.tenantAdmin, .member, .viewer]

    static let table: [Row] = [
        Row(method: "GET", pattern: "/readyz", roles: nil),
        Row(method: "GET", pattern: "/metrics", roles: nil),
        Row(method: "GET", pattern: "/openapi.yaml", roles: nil),
        // The platform: admin only.
        Row(method: "POST", pattern: "/v1/admin/regions", roles: admin),
        Row(method: "PUT", pattern: "/v1/admin/regions/{id}", roles: admin),
        Row(method: "DELETE", pattern: "/v1/admin/regions/{id}", roles: admin),
        Row(method: "PUT", pattern: "/v1/admin/regions/{id}/pools/{poolId}", roles: admin),
        Row(method: "DELETE", pattern: "/v1/admin/regions/{id}/pools/{poolId}", roles: admin),
        Row(method: "POST", pattern: "/v1/admin/tenants", roles: admin),
        Row(method: "GET", pattern: "/v1/admin/tenants", roles: admin),
        Row(method: "PATCH", pattern: "/v1/admin/tenants/{id}", roles: admin),
        Row(method: "GET", pattern: "/v1/admin/tenants/{id}/allocations", roles: admin),
        Row(method: "POST", pattern: "/v1/admin/tenants/{id}/tokens", roles: admin),
        Row(method: "GET", pattern: "/v1/admin/allocations", roles: admin),
        Row(method: "GET", pattern: "/v1/admin/allocations/{id}", roles: admin),
        Row(method: "PATCH", pattern: "/v1/admin/allocations/{id}", roles: admin),
        Row(method: "POST", pattern: "/v1/admin/allocations/{id}/renew", roles: admin),
        Row(method: "DELETE", pattern: "/v1/admin/allocations/{id}", roles: admin),
        Row(method: "GET", pattern: "/v1/admin/allocations/{id}/events", roles: admin),
        Row(method: "GET", pattern: "/v1/admin/usage", roles: admin),
        Row(method: "GET", pattern: "/v1/admin/preemption", roles: admin),
        Row(method: "PUT", pattern: "/v1/admin/preemption/{qos}", roles: admin),
        Row(method: "POST", pattern: "/v1/admin/reports", roles: admin),
        Row(method: "GET", pattern: "/v1/admin/shares", roles: admin),
        Row(method: "GET", pattern: "/v1/admin/tenants/{id}/share", roles: admin),
        Row(method: "PUT", pattern: "/v1/admin/tenants/{id}/share", roles: admin),
        Row(method: "PATCH", pattern: "/v1/admin/tenants/{id}/share", roles: admin),
        // What is on offer: every caller with a token.
        Row(method: "GET", pattern: "/v1/regions", roles: everyone, scope: .inventoryRead),
        Row(method: "GET", pattern: "/v1/regions/{id}", roles: everyone, scope: .inventoryRead),
        Row(method: "GET", pattern: "/v1/regions/{id}/inventory", roles: everyone, scope: .inventoryRead),
        Row(method: "GET", pattern: "/v1/inventory", roles: everyone, scope: .inventoryRead),
        Row(method: "POST", pattern: "/v1/sizing", roles: everyone, scope: .inventoryRead),
        // A tenant's allocations.
        Row(method: "POST", pattern: "/v1/allocations", roles: allocating, scope: .allocationsWrite),
        Row(method: "POST", pattern: "/v1/allocations/from-manifest", roles: allocating, scope: .allocationsWrite),
        Row(method: "PATCH", pattern: "/v1/allocations/{id}", roles: allocating, scope: .allocationsWrite),
        Row(method: "POST", pattern: "/v1/allocations/{id}/renew", roles: allocating, scope: .allocationsWrite),
        Row(method: "DELETE", pattern: "/v1/allocations/{id}", roles: allocating, scope: .allocationsWrite),
        Row(method: "GET", pattern: "/v1/allocations", roles: reading, scope: .allocationsRead),
        Row(method: "GET", pattern: "/v1/allocations/{id}", roles: reading, scope: .allocationsRead),
        Row(method: "GET", pattern: "/v1/allocations/{id}/events", roles: reading, scope: .allocationsRead),
        Row(method: "GET", pattern: "/v1/allocations/{id}/queue", roles: reading, scope: .allocationsRead),
        Row(method: "GET", pattern: "/v1/events", roles: reading.union(admin), scope: .eventsRead),
        // Where the tenant stands against its fair share: read like its queue positions.
        Row(method: "GET", pattern: "/v1/shares", roles: reading, scope: .allocationsRead),
        // Policies: read by those who allocate, written by the tenant-admin.
        Row(method: "GET", pattern: "/v1/policies", roles: reading, scope: .policiesRead),
        Row(method: "GET", pattern: "/v1/policies/{name}", roles: reading, scope: .policiesRead),
        Row(method: "PUT", pattern: "/v1/policies/{name}", roles: [.tenantAdmin], scope: .policiesWrite),
        Row(method: "DELETE", pattern: "/v1/policies/{name}", roles: [.tenantAdmin], scope: .policiesWrite),
        // Webhooks: the admin's (inventory events) and the tenant-admin's.
        Row(method: "POST", pattern: "/v1/webhooks", roles: [.admin, .tenantAdmin], scope: .webhooksWrite),
        Row(method: "GET", pattern: "/v1/webhooks", roles: [.admin, .tenantAdmin], scope: .webhooksRead),
        Row(method: "GET", pattern: "/v1/webhooks/{id}", roles: [.admin, .tenantAdmin], scope: .webhooksRead),
        Row(method: "DELETE", pattern: "/v1/webhooks/{id}", roles: [.admin, .tenantAdmin], scope: .webhooksWrite),
        Row(method: "POST", pattern: "/v1/webhooks/{id}/secret", roles: [.admin, .tenantAdmin], scope: .webhooksWrite),
        Row(method: "GET", pattern: "/v1/webhooks/{id}/deliveries", roles: [.admin, .tenantAdmin], scope: .webhooksRead),
        // Usage and spend.
        Row(method: "GET", pattern: "/v1/usage", roles: [.tenantAdmin, .viewer, .billing], scope: .usageRead),
        Row(method: "GET", pattern: "/v1/history/running", roles: everyone, scope: .usageRead),
        // Who the token is: every caller, never a scoped token (no scope names it).
        Row(method: "GET", pattern: "/v1/whoami", roles: everyone),
        // A tenant's named tokens: its tenant-admin only, never a scoped token.
        Row(method: "POST", pattern: "/v1/tokens", roles: [.tenantAdmin]),
        Row(method: "GET", pattern: "/v1/tokens", roles: [.tenantAdmin]),
        Row(method: "DELETE", pattern: "/v1/tokens/{id}", roles: [.tenantAdmin]),
    ]

    static func row(_ method: String, _ pattern: String) -> Row? {
        table.first { $0.method == method && $0.pattern == pattern }
    }

    /// The 403 of a caller outside a row.
    static func refusal(_ caller: Caller, _ row: Row) -> Problem {
        let roles = Role.allCases.filter { row.roles?.contains($0) ?? false }.map(\.rawValue)
        if caller.scopes != nil, row.roles?.contains(caller.role) ?? false {
            let needed = row.scope.map { "the scope \($0.rawValue)" } ?? "a token without scopes"
            return Problem.forbidden("\(row.method) \(row.pattern) needs \(needed); this token's scopes do not include it")
        }
        return Problem.forbidden(
            "\(row.method) \(row.pattern) is for the roles \(roles.joined(separator: ", ")); this caller is \(caller.role.rawValue)")
    }
}
