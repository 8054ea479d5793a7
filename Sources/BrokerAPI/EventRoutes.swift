import BrokerCore
import BrokerEvents
import BrokerStore
import Foundation
import MicroHTTP

/// What happens to allocations while a client waits: watch streams of the ledger
/// feed (Server-Sent Events) and a pending allocation's place in the queue.
enum EventRoutes {
    static func register(_ routes: inout RouteBuilder) {
        routes.add("GET", "/v1/allocations/{id}/queue") { request, context in
            try JSONBodies.response(
                200, try await context.services.queuePositions.position(
                    tenantId: try context.tenant.id.uuid, id: try AllocationRoutes.allocationId(request)))
        }
        routes.add("GET", "/v1/events") { request, context in
            let tenant = try tenantScope(context)
            if wantsStream(request) { return try watch(request, context, tenant: tenant, allocation: nil) }
            return try await page(request, context, tenant: tenant)
        }
    }

    /// The `limit` query parameter of the event and delivery lists: 1 to 1000, default 100.
    static func pageLimit(_ request: HTTPRequest) throws -> Int {
        guard let raw = request.query["limit"] else { return 100 }
        guard let value = Int(raw), (1...1000).contains(value) else {
            throw ValidationFailure(field: "limit", message: "must be an integer from 1 to 1000")
        }
        return value
    }

    /// `Accept: text/event-stream` asks for a stream; anything else gets JSON.
    static func wantsStream(_ request: HTTPRequest) -> Bool {
        request.headers.values(for: "Accept").contains { $0.lowercased().contains("text/event-stream") }
    }

    /// `GET /v1/allocations/{id}/events` with `Accept: text/event-stream`.
    static func watchAllocation(_ request: HTTPRequest, _ context: RequestContext) async throws -> HTTPResponse {
        let tenant = try context.tenant.id.uuid
        let id = try AllocationRoutes.allocationId(request)
        guard try await context.services.eventFeed.owns(tenant: tenant, allocation: id) else {
            throw Problem.notFound("allocation '\(id.uuidString.lowercased())' not found")
        }
        return try watch(request, context, tenant: tenant, allocation: id)
    }

    /// nil for the admin, who sees every tenant's events (and owns the endpoints without a tenant).
    static func tenantScope(_ context: RequestContext) throws -> UUID? {
        if case .admin = context.principal { return nil }
        return try context.tenant.id.uuid
    }

    private static func position(_ text: String?, _ name: String) throws -> FeedPosition? {
        guard let text else { return nil }
        guard let position = FeedPosition(text) else {
            throw Problem.invalidRequest("\(name) must be an event id as sent in 'id:' (<xid>-<seq>), got '\(text)'")
        }
        return position
    }

    private static func watch(_ request: HTTPRequest, _ context: RequestContext, tenant: UUID?, allocation: UUID?) throws -> HTTPResponse {
        let after = try position(request.headers["Last-Event-ID"], "Last-Event-ID")
        let stream = HTTPStream()
        switch context.services.eventHub.watch(.init(tenant: tenant, allocation: allocation, after: after), into: stream) {
        case .started: break
        case .closed: throw Problem.unavailable("the broker is shutting down; reconnect to another")
        case .atLimit(let limit): throw Problem.limitExceeded(.streamsPerTenant, limit)
        }
        var response = HTTPResponse(
            status: 200,
            headers: HTTPHeaders([("Content-Type", "text/event-stream"), ("Cache-Control", "no-store"), ("X-Accel-Buffering", "no")]))
        response.stream = stream
        return response
    }

    /// `GET /v1/events` as JSON: the events after `after` (from the feed's start
    /// without it), at most `limit`, and where the next page starts.
    private static func page(_ request: HTTPRequest, _ context: RequestContext, tenant: UUID?) async throws -> HTTPResponse {
        let after = try position(request.query["after"], "after") ?? FeedPosition(xid: 0, seq: 0)
        let limit = try pageLimit(request)
        let (events, reached) = try await context.services.eventFeed.read(after: after, tenant: tenant, allocation: nil, limit: limit)
        return JSONBodies.response(200, encoded: EventBodies.page(events, nextAfter: reached))
    }
}
