import BrokerCore
import BrokerStore
import Foundation
import MicroHTTP

enum TenantRoutes {
    static func register(_ routes: inout RouteBuilder) {
        routes.add("POST", "/v1/admin/tenants") { request, context in
            let spec = try TenantSpec.parse(try JSONBodies.read(request))
            let (tenant, token) = try await context.services.tenants.create(
                name: spec.name ?? "", quota: spec.quota ?? TenantQuota())
            return try JSONBodies.response(201, WithSecret(value: tenant, name: "token", secret: token))
        }
        routes.add("GET", "/v1/admin/tenants") { request, context in
            let query = try PageQuery.parse(request.query)
            let page = try await context.services.tenants.list(
                limit: query.limit, after: try query.cursor { UUID(uuidString: $0) })
            return try JSONBodies.response(200, ListPage(name: "tenants", page: page))
        }
        routes.add("PATCH", "/v1/admin/tenants/{id}") { request, context in
            let id = try tenantId(request)
            let spec = try TenantSpec.parsePatch(try JSONBodies.read(request))
            return try JSONBodies.response(
                200, try await context.services.tenants.update(
                    id: id, name: spec.name, quota: spec.quota, removedLimits: spec.removedLimits))
        }
        // What a tenant holds and waits for, for an operator: the tenant's own list, read by the admin.
        routes.add("GET", "/v1/admin/tenants/{id}/allocations") { request, context in
            let id = try tenantId(request)
            _ = try await context.services.tenants.get(id: id)
            return try await AllocationRoutes.list(request, tenantId: id, context)
        }
        // Who the token is (`gpubroker whoami`): the admin, or a tenant with its quota as stored now.
        routes.add("GET", "/v1/whoami") { _, context in
            guard case .tenant(let tenant) = context.principal else { return try JSONBodies.response(200, Identity(role: .admin)) }
            return try JSONBodies.response(200, Identity(role: .tenant, tenant: try await context.services.tenants.get(id: tenant.id.uuid)))
        }
        routes.add("POST", "/v1/admin/tenants/{id}/tokens") { request, context in
            let (tenant, token) = try await context.services.tenants.rotateToken(id: try tenantId(request))
            return try JSONBodies.response(201, WithSecret(value: tenant, name: "token", secret: token))
        }
    }

    static func tenantId(_ request: HTTPRequest) throws -> UUID {
        let raw = request.pathParameters["id"]!
        guard let id = UUID(uuidString: raw) else { throw Problem.notFound("tenant '\(raw)' not found") }
        return id
    }
}

/// The answer of `GET /v1/whoami`.
struct Identity: Encodable {
    var role: CallerRole
    var tenant: Tenant?
}
