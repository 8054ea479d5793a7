import BrokerCore
import BrokerStore
import Foundation
import MicroHTTP

/// What happens to allocations while a client waits: its place in the queue.
enum EventRoutes {
    static func register(_ routes: inout RouteBuilder) {
        routes.add("GET", "/v1/allocations/{id}/queue", .tenant) { request, context in
            let raw = request.pathParameters["id"]!
            guard let id = UUID(uuidString: raw) else { throw Problem.notFound("allocation '\(raw)' not found") }
            return try JSONBodies.response(
                200, try await context.services.queuePositions.position(tenantId: try context.tenant.id.uuid, id: id))
        }
    }
}
