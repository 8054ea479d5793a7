import BrokerCore
import BrokerStore
import Foundation
import MicroHTTP

/// A tenant's named placement policies.
enum PolicyRoutes {
    static func register(_ routes: inout RouteBuilder) {
        routes.add("GET", "/v1/policies", .tenant) { _, context in
            try JSONBodies.response(200, ["policies": try await context.services.policies.list(tenantId: try context.tenant.id.uuid)])
        }
        routes.add("PUT", "/v1/policies/{name}", .tenant) { request, context in
            let tenant = try context.tenant
            let policy = try PolicySpec.parse(try JSONBodies.read(request), name: request.pathParameters["name"]!)
            let (saved, created) = try await context.services.policies.put(tenantId: tenant.id.uuid, policy)
            return try JSONBodies.response(created ? 201 : 200, saved)
        }
        routes.add("GET", "/v1/policies/{name}", .tenant) { request, context in
            try JSONBodies.response(
                200, try await context.services.policies.get(tenantId: try context.tenant.id.uuid, name: request.pathParameters["name"]!))
        }
        routes.add("DELETE", "/v1/policies/{name}", .tenant) { request, context in
            try await context.services.policies.delete(tenantId: try context.tenant.id.uuid, name: request.pathParameters["name"]!)
            return JSONBodies.noContent()
        }
    }
}
