import Foundation
import MicroHTTP

/// Liveness, readiness, metrics and the API document: no token needed.
enum SystemRoutes {
    static let openAPIDocument: [UInt8] = PackageResources.openapi_yaml
    static let healthy = HTTPResponse(
        status: 200, headers: HTTPHeaders([("Content-Type", "application/json")]), body: Array(#"{"status":"ok"}"#.utf8))

    static func register(_ routes: inout RouteBuilder) {
        // On the HTTP thread: liveness probes and load balancers call it often.
        let healthy = Self.healthy  // captured: no lazy-global check per request
        routes.addSynchronous("GET", "/healthz") { _, _ in healthy }
        routes.add("GET", "/readyz") { _, context in
            if let problem = await context.services.readinessProblem() {
                throw Problem.unavailable("not ready: \(problem)")
            }
            return try JSONBodies.response(200, ["status": "ready"])
        }
        routes.add("GET", "/metrics") { _, context in
            let services = context.services
            var text = services.metricsText()
            // Without the database the process's own metrics still answer.
            if let regions = try? await services.inventory.inventory(),
                let pending = try? await services.allocations.pendingDemand()
            {
                text += CapacityMetrics.text(regions: regions, pending: pending)
            }
            return HTTPResponse(
                status: 200, headers: HTTPHeaders([("Content-Type", "text/plain; version=0.0.4; charset=utf-8")]),
                body: Array(text.utf8))
        }
        routes.add("GET", "/openapi.yaml") { _, _ in
            HTTPResponse(
                status: 200, headers: HTTPHeaders([("Content-Type", "application/yaml")]), body: openAPIDocument)
        }
    }
}
