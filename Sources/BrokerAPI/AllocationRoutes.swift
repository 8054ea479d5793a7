import BrokerCore
import BrokerStore
import Foundation
import MicroHTTP

/// A tenant's allocations: request, read, scale, renew, release, and their ledger rows.
/// Requesting, scaling and renewing may be rehearsed (`dryRun=true`, `DryRunAnswers`).
enum AllocationRoutes {
    static func register(_ routes: inout RouteBuilder) {
        routes.add("POST", "/v1/allocations") { request, context in
            let tenant = try context.tenant
            let key = try idempotencyKey(request)
            let dryRun = try DryRunAnswers.requested(request)
            let allocationRequest = try AllocationRequest.parse(try JSONBodies.read(request))
            if dryRun {
                return try DryRunAnswers.response(
                    try await context.services.allocations.dryRun(
                        tenantId: tenant.id.uuid, request: allocationRequest, actor: context.actor),
                    grantedStatus: 201)
            }
            let view = try await context.services.allocations.create(
                tenantId: tenant.id.uuid, request: allocationRequest, actor: context.actor, idempotencyKey: key)
            return try JSONBodies.response(
                view.status == .pending ? 202 : 201, view,
                headers: [("Location", "/v1/allocations/\(view.id.description)")])
        }
        routes.add("GET", "/v1/allocations") { request, context in
            try await list(request, tenantId: try context.tenant.id.uuid, context)
        }
        routes.add("GET", "/v1/allocations/{id}") { request, context in
            let (tenant, id) = try target(request, context)
            return try JSONBodies.response(200, try await context.services.allocations.get(tenantId: tenant, id: id))
        }
        routes.add("PATCH", "/v1/allocations/{id}") { request, context in
            let (tenant, id) = try target(request, context)
            let dryRun = try DryRunAnswers.requested(request)
            let change = try ReplicaChange.parse(try JSONBodies.read(request))
            if dryRun {
                return try DryRunAnswers.response(
                    try await context.services.allocations.dryRunScale(
                        tenantId: tenant, id: id, replicas: change.replicas, actor: context.actor),
                    grantedStatus: 200)
            }
            return try JSONBodies.response(200, try await context.services.allocations.scale(
                tenantId: tenant, id: id, replicas: change.replicas, actor: context.actor))
        }
        routes.add("POST", "/v1/allocations/{id}/renew") { request, context in
            let (tenant, id) = try target(request, context)
            let dryRun = try DryRunAnswers.requested(request)
            let renew = try RenewRequest.parse(try JSONBodies.readOptional(request))
            if dryRun {
                return try DryRunAnswers.response(
                    try await context.services.allocations.dryRunRenew(
                        tenantId: tenant, id: id, leaseSeconds: renew.leaseSeconds, actor: context.actor),
                    grantedStatus: 200)
            }
            return try JSONBodies.response(200, try await context.services.allocations.renew(
                tenantId: tenant, id: id, leaseSeconds: renew.leaseSeconds, actor: context.actor))
        }
        routes.add("DELETE", "/v1/allocations/{id}") { request, context in
            let (tenant, id) = try target(request, context)
            return try JSONBodies.response(
                200, try await context.services.allocations.release(tenantId: tenant, id: id, actor: context.actor))
        }
        routes.add("GET", "/v1/allocations/{id}/events") { request, context in
            if EventRoutes.wantsStream(request) { return try await EventRoutes.watchAllocation(request, context) }
            let (tenant, id) = try target(request, context)
            return try JSONBodies.response(200, ["events": try await context.services.allocations.events(tenantId: tenant, id: id)])
        }
    }

    /// One page of a tenant's allocations (`GET /v1/allocations`, and the admin's view of a tenant).
    static func list(_ request: HTTPRequest, tenantId: UUID, _ context: RequestContext) async throws -> HTTPResponse {
        let query = try PageQuery.parse(request.query, filters: ["status", "region"])
        let page = try await context.services.allocations.list(
            tenantId: tenantId, limit: query.limit, before: try query.cursor { Int64($0).flatMap { $0 >= 0 ? $0 : nil } },
            status: try query.filters["status"].map(status), region: query.filters["region"])
        return try JSONBodies.response(200, ListPage(name: "allocations", page: page))
    }

    /// The `status` filter of `GET /v1/allocations`.
    static func status(_ value: String) throws(ValidationFailure) -> AllocationStatus {
        guard let status = AllocationStatus(rawValue: value) else {
            throw ValidationFailure(
                field: "status", message: "must be one of \(AllocationStatus.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return status
    }

    /// The optional `Idempotency-Key` header: 1 to 255 visible ASCII characters.
    static func idempotencyKey(_ request: HTTPRequest) throws -> String? {
        guard let key = request.headers["Idempotency-Key"] else { return nil }
        guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) else {
            throw ValidationFailure(errors: [
                FieldError(field: "Idempotency-Key", message: "must be 1 to 255 visible ASCII characters")
            ])
        }
        return key
    }

    /// The calling tenant and the allocation the path names.
    static func target(_ request: HTTPRequest, _ context: RequestContext) throws -> (tenant: UUID, id: UUID) {
        (try context.tenant.id.uuid, try allocationId(request))
    }

    /// A malformed id cannot name an allocation: 404, like an unknown one.
    static func allocationId(_ request: HTTPRequest) throws -> UUID {
        let raw = request.pathParameters["id"]!
        guard let id = UUID(uuidString: raw) else { throw Problem.notFound("allocation '\(raw)' not found") }
        return id
    }
}
