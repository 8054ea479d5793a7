import BrokerCore
import BrokerStore
import Foundation
import MicroHTTP

/// Running instances over the last hours, from the ledger: a tenant's own, the admin's all.
enum HistoryRoutes {
    /// Points per window, whatever its length: enough for a chart, little to send.
    static let steps = 96

    static func register(_ routes: inout RouteBuilder) {
        routes.add("GET", "/v1/history/running") { request, context in
            let hours = try hours(request.query)
            var tenantId: UUID?
            if case .tenant(let tenant) = context.principal { tenantId = tenant.id.uuid }
            let history = try await context.services.inventory.runningHistory(
                tenantId: tenantId, to: Date(), step: Double(hours) * 3600 / Double(steps), steps: steps)
            return try JSONBodies.response(200, history)
        }
    }

    /// `hours`, 1 to 168 (a week), default 24; no other parameter.
    static func hours(_ query: [String: String]) throws -> Int {
        var errors: [FieldError] = []
        var hours = 24
        for (name, value) in query.sorted(by: { $0.key < $1.key }) {
            if name == "hours", let given = Int(value), (1...168).contains(given) {
                hours = given
            } else if name == "hours" {
                errors.append(FieldError(field: "hours", message: "must be an integer from 1 to 168"))
            } else {
                errors.append(FieldError(field: name, message: "unknown query parameter"))
            }
        }
        if !errors.isEmpty { throw ValidationFailure(errors: errors) }
        return hours
    }
}
