import BrokerCore
import BrokerStore
import Foundation
import MicroHTTP

/// Reports from the real world: a region's agent (with an admin token) says instances
/// were lost or a pool ran out of stock. README, "Region agents", is the contract.
enum ReportRoutes {
    static func register(_ routes: inout RouteBuilder) {
        routes.add("POST", "/v1/admin/reports") { request, context in
            let report = try CapacityReport.parse(try JSONBodies.read(request))
            return try JSONBodies.response(200, try await context.services.allocations.report(report, actor: "admin"))
        }
    }
}
