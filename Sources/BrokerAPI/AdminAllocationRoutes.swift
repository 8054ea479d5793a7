import BrokerCore
import BrokerStore
import Foundation
import MicroHTTP

/// The admin acting on any tenant's allocation: the tenant routes' reads and changes, on
/// the allocation's owner, recorded in the ledger as the admin's (`actor` "admin"); the
/// answers name the tenant (`tenantId`).
enum AdminAllocationRoutes {
    static func register(_ routes: inout RouteBuilder) {
        routes.add("GET", "/v1/admin/allocations") { request, context in
            let query = try PageQuery.parse(request.query, filters: ["status", "region", "tenant"])
            let tenant = try query.filters["tenant"].map { raw throws(ValidationFailure) -> UUID in
                guard let id = UUID(uuidString: raw) else { throw ValidationFailure(field: "tenant", message: "must be a tenant id") }
                return id
            }
            let page = try await context.services.allocations.list(
                tenantId: tenant, limit: query.limit, before: try query.cursor { Int64($0).flatMap { $0 >= 0 ? $0 : nil } },
                status: try query.filters["status"].map(AllocationRoutes.status), region: query.filters["region"],
                namingTenants: true)
            return try JSONBodies.response(200, ListPage(name: "allocations", page: page))
        }
        routes.add("GET", "/v1/admin/allocations/{id}") { request, context in
            let (tenant, id) = try await target(request, context)
            return try answer(tenant, try await context.services.allocations.get(tenantId: tenant, id: id))
        }
        routes.add("PATCH", "/v1/admin/allocations/{id}") { request, context in
            let (tenant, id) = try await target(request, context)
            let dryRun = try DryRunAnswers.requested(request)
            let change = try ReplicaChange.parse(try JSONBodies.read(request))
            if dryRun {
                return try DryRunAnswers.response(
                    try await context.services.allocations.dryRunScale(
                        tenantId: tenant, id: id, replicas: change.replicas, actor: context.actor),
                    grantedStatus: 200, tenant: tenant)
            }
            return try answer(tenant, try await context.services.allocations.scale(
                tenantId: tenant, id: id, replicas: change.replicas, actor: context.actor))
        }
        routes.add("POST", "/v1/admin/allocations/{id}/renew") { request, context in
            let (tenant, id) = try await target(request, context)
            let dryRun = try DryRunAnswers.requested(request)
            let renew = try RenewRequest.parse(try JSONBodies.readOptional(request))
            if dryRun {
                return try DryRunAnswers.response(
                    try await context.services.allocations.dryRunRenew(
                        tenantId: tenant, id: id, leaseSeconds: renew.leaseSeconds, actor: context.actor),
                    grantedStatus: 200, tenant: tenant)
            }
            return try answer(tenant, try await context.services.allocations.renew(
                tenantId: tenant, id: id, leaseSeconds: renew.leaseSeconds, actor: context.actor))
        }
        routes.add("DELETE", "/v1/admin/allocations/{id}") { request, context in
            let (tenant, id) = try await target(request, context)
            return try answer(tenant, try await context.services.allocations.release(tenantId: tenant, id: id, actor: context.actor))
        }
        routes.add("GET", "/v1/admin/allocations/{id}/events") { request, context in
            let (tenant, id) = try await target(request, context)
            return try JSONBodies.response(200, ["events": try await context.services.allocations.events(tenantId: tenant, id: id)])
        }
    }

    /// The allocation the path names and its tenant.
    static func target(_ request: HTTPRequest, _ context: RequestContext) async throws -> (tenant: UUID, id: UUID) {
        let id = try AllocationRoutes.allocationId(request)
        return (try await context.services.allocations.owner(of: id), id)
    }

    static func answer(_ tenant: UUID, _ view: AllocationView) throws -> HTTPResponse {
        var view = view
        view.tenantId = ResourceID(tenant)
        return try JSONBodies.response(200, view)
    }
}
