import BrokerCore
import BrokerStore
import Foundation
import MicroHTTP

/// A tenant's named placement policies.
enum PolicyRoutes {
    static func register(_ routes: inout RouteBuilder) {
        routes.add("GET", "/v1/policies") { _, context in
            try JSONBodies.response(200, ["policies": try await context.services.policies.list(tenantId: try context.tenant.id.uuid)])
        }
        routes.add("PUT", "/v1/policies/{name}") { request, context in
            let tenant = try context.tenant
            let body = try JSONBodies.read(request)
            let name = request.pathParameters["name"]!
            // A ResourcePolicy, PropagationPolicy or ctyun Policy as written, or the broker's own shape.
            let (policy, warnings) = ManifestPolicies.isPolicy(body)
                ? try ManifestPolicies.named(body, name: name) : (try PolicySpec.parse(body, name: name), [])
            let (saved, created) = try await context.services.policies.put(
                tenantId: tenant.id.uuid, policy, limit: context.services.limits[.policiesPerTenant])
            guard !warnings.isEmpty else { return try JSONBodies.response(created ? 201 : 200, saved) }
            return try JSONBodies.response(created ? 201 : 200, StoredPolicy(policy: saved, warnings: warnings))
        }
        routes.add("GET", "/v1/policies/{name}") { request, context in
            try JSONBodies.response(
                200, try await context.services.policies.get(tenantId: try context.tenant.id.uuid, name: request.pathParameters["name"]!))
        }
        routes.add("DELETE", "/v1/policies/{name}") { request, context in
            try await context.services.policies.delete(tenantId: try context.tenant.id.uuid, name: request.pathParameters["name"]!)
            return JSONBodies.noContent()
        }
    }
}

/// A stored policy with what its source object asked for that a stored policy cannot do.
struct StoredPolicy: Encodable {
    var name: String
    var selector: [String: String]
    var policy: PlacementPolicy
    var warnings: [String]

    init(policy saved: NamedPolicy, warnings: [String]) {
        name = saved.name
        selector = saved.selector
        policy = saved.policy
        self.warnings = warnings
    }
}
