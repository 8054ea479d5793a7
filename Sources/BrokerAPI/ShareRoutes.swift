import BrokerCore
import BrokerStore
import Foundation
import MicroHTTP

/// Fair shares (issue 28): the admin sets a tenant's cohort and per-resource guarantees,
/// weights and limits; a tenant reads where it stands, the admin where everyone stands.
enum ShareRoutes {
    struct ShareList: Encodable {
        var shares: [ShareReport]
    }

    static func register(_ routes: inout RouteBuilder) {
        routes.add("GET", "/v1/shares") { _, context in
            let reports = try await context.services.shares.reports(tenantId: try context.tenant.id.uuid)
            return try JSONBodies.response(200, reports[0])
        }
        routes.add("GET", "/v1/admin/shares") { _, context in
            try JSONBodies.response(200, ShareList(shares: try await context.services.shares.reports()))
        }
        routes.add("GET", "/v1/admin/tenants/{id}/share") { request, context in
            try JSONBodies.response(200, try await context.services.shares.get(tenantId: try TenantRoutes.tenantId(request)))
        }
        // PUT replaces the share, PATCH merges into it (RFC 7396): both are a patch, onto nothing or onto the current.
        for (method, replaces) in [("PUT", true), ("PATCH", false)] {
            routes.add(method, "/v1/admin/tenants/{id}/share") { request, context in
                let id = try TenantRoutes.tenantId(request)
                let body = try JSONBodies.read(request)
                let share = try await context.services.shares.update(tenantId: id) { current in
                    try ShareSpec.apply(body, to: replaces ? TenantShare() : current)
                }
                return try JSONBodies.response(200, share)
            }
        }
    }
}
