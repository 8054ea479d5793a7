import BrokerCore
import BrokerEvents
import BrokerStore
import Foundation
import MicroHTTP

/// Webhook endpoints (Standard Webhooks deliveries): a tenant's get its allocations'
/// events; the admin's (no tenant) may also take every tenant's and the inventory's.
enum WebhookRoutes {
    static func register(_ routes: inout RouteBuilder) {
        routes.add("POST", "/v1/webhooks") { request, context in
            let owner = try EventRoutes.tenantScope(context)
            let spec = try WebhookSpec.parse(try JSONBodies.read(request), admin: owner == nil)
            if let refusal = await context.services.webhookURLs.refusal(spec.url, resolving: false) {
                throw ValidationFailure(field: "url", message: refusal)
            }
            let secret = WebhookSignature.newSecret()
            let endpoint = try await context.services.webhooks.create(
                tenantId: owner, url: spec.url, eventTypes: spec.eventTypes, secret: secret,
                limit: context.services.limits[.webhookEndpointsPerTenant])
            return try JSONBodies.response(
                201, WithSecret(value: endpoint, name: "secret", secret: secret), headers: [("Location", "/v1/webhooks/\(endpoint.id)")])
        }
        routes.add("GET", "/v1/webhooks") { _, context in
            try JSONBodies.response(200, ["webhooks": try await context.services.webhooks.list(tenantId: try EventRoutes.tenantScope(context))])
        }
        routes.add("GET", "/v1/webhooks/{id}") { request, context in
            try JSONBodies.response(
                200, try await context.services.webhooks.get(tenantId: try EventRoutes.tenantScope(context), id: try endpointId(request)))
        }
        routes.add("DELETE", "/v1/webhooks/{id}") { request, context in
            try await context.services.webhooks.delete(tenantId: try EventRoutes.tenantScope(context), id: try endpointId(request))
            return JSONBodies.noContent()
        }
        routes.add("POST", "/v1/webhooks/{id}/secret") { request, context in
            let secret = WebhookSignature.newSecret()
            let endpoint = try await context.services.webhooks.rotateSecret(
                tenantId: try EventRoutes.tenantScope(context), id: try endpointId(request), secret: secret)
            return try JSONBodies.response(200, WithSecret(value: endpoint, name: "secret", secret: secret))
        }
        routes.add("GET", "/v1/webhooks/{id}/deliveries") { request, context in
            let deliveries = try await context.services.webhooks.deliveries(
                tenantId: try EventRoutes.tenantScope(context), id: try endpointId(request), limit: try EventRoutes.pageLimit(request))
            return try JSONBodies.response(200, ["deliveries": deliveries])
        }
    }

    static func endpointId(_ request: HTTPRequest) throws -> UUID {
        let raw = request.pathParameters["id"]!
        guard let id = UUID(uuidString: raw) else { throw Problem.notFound("webhook endpoint '\(raw)' not found") }
        return id
    }
}
