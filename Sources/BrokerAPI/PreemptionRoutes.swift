import BrokerCore
import BrokerStore
import Foundation
import MicroHTTP

/// The admin's preemption settings per QoS: notice and minimum runtime.
enum PreemptionRoutes {
    static func register(_ routes: inout RouteBuilder) {
        routes.add("GET", "/v1/admin/preemption") { _, context in
            try JSONBodies.response(200, Classes(classes: try await context.services.allocations.preemptionSettings()))
        }
        routes.add("PUT", "/v1/admin/preemption/{qos}") { request, context in
            let raw = request.pathParameters["qos"]!
            guard let qos = QoS(rawValue: raw) else { throw Problem.notFound("QoS '\(raw)' not found") }
            let settings = try PreemptionSettings.parse(try JSONBodies.read(request), qos: qos)
            return try JSONBodies.response(200, try await context.services.allocations.setPreemptionSettings(settings))
        }
    }

    struct Classes: Encodable {
        var classes: [PreemptionSettings]
    }
}
