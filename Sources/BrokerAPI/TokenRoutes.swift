import BrokerCore
import BrokerStore
import Foundation
import MicroHTTP

/// A tenant's named tokens, managed by its tenant-admin: the secret is in the creation's
/// answer only.
enum TokenRoutes {
    static func register(_ routes: inout RouteBuilder) {
        routes.add("POST", "/v1/tokens") { request, context in
            let spec = try TokenSpec.parse(try JSONBodies.read(request))
            let (token, secret) = try await context.services.tokens.create(
                tenantId: try context.tenant.id.uuid, spec, createdBy: context.caller?.who ?? "",
                limit: context.services.limits[.tokensPerTenant])
            return try JSONBodies.response(
                201, WithSecret(value: token, name: "token", secret: secret), headers: [("Location", "/v1/tokens/\(token.id)")])
        }
        routes.add("GET", "/v1/tokens") { _, context in
            try JSONBodies.response(200, ["tokens": try await context.services.tokens.list(tenantId: try context.tenant.id.uuid)])
        }
        routes.add("DELETE", "/v1/tokens/{id}") { request, context in
            let raw = request.pathParameters["id"]!
            guard let id = UUID(uuidString: raw) else { throw Problem.notFound("token '\(raw)' not found") }
            try await context.services.tokens.revoke(tenantId: try context.tenant.id.uuid, id: id)
            return JSONBodies.noContent()
        }
    }
}
