import BrokerAPI
import BrokerConsole
import BrokerCore
import BrokerStore
import Foundation
import Logging
import MicroHTTP
import PostgresClient
import TestSupport
import XCTest
import Yams

/// The document and the router describe the same API: every route is documented and
/// every documented operation is routed. `scripts/contract-test` checks the rest
/// (schemas, status codes, links) against a live broker with schemathesis.
final class OpenAPIContractTests: XCTestCase {
    static let httpMethods: Set<String> = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static func documentText() throws -> String {
        try String(contentsOf: repositoryRoot.appendingPathComponent("openapi/openapi.yaml"), encoding: .utf8)
    }

    /// `(METHOD, path)` of every operation the document declares.
    static func documentedOperations() throws -> Set<String> {
        let document = try XCTUnwrap(try Yams.load(yaml: documentText()) as? [String: Any])
        let paths = try XCTUnwrap(document["paths"] as? [String: Any])
        var operations: Set<String> = []
        for (path, item) in paths {
            let item = try XCTUnwrap(item as? [String: Any], "path item \(path)")
            for key in item.keys where httpMethods.contains(key) {
                operations.insert("\(key.uppercased()) \(path)")
            }
        }
        return operations
    }

    /// `(METHOD, pattern)` of every API route the broker registers; building the router opens no
    /// connection. The web console's HTML routes (`GET /`, `/console/…`, added by
    /// `BrokerConsole.register` to the same server router) are not API operations and are
    /// left out of the document: `testConsoleAddsOnlyHTMLRoutesOutsideTheAPI` checks where they live.
    static func routedOperations() -> Set<String> {
        Set(apiRouter().routes.map { "\($0.method) \($0.pattern)" })
    }

    static func apiRouter() -> Router {
        let pool = PostgresPool(configuration: PostgresConfiguration(url: "postgresql://unused@127.0.0.1:1/unused"), size: 1)
        let services = BrokerServices(
            inventory: InventoryStore(pool: pool), tenants: TenantStore(pool: pool),
            allocations: AllocationStore(pool: pool), policies: PolicyStore(pool: pool),
            usage: UsageStore(pool: pool), admin: AdminCredential(token: "unused"), metricsText: { "" }, readinessProblem: { nil },
            logger: Logger(label: "contract-test"))
        return BrokerAPI.router(services: services)
    }

    /// The console's routes, registered as `gpubroker serve` does, are `GET /` and routes under
    /// `/console/`, none under `/v1/` or any documented path: the parity above covers the whole API.
    /// The limits a refusal may name are `ResourceLimits`' names, and only those.
    func testTheDocumentsLimitNamesAreTheBrokersLimits() throws {
        let document = try XCTUnwrap(try Yams.load(yaml: Self.documentText()) as? [String: Any])
        let schemas = try XCTUnwrap((document["components"] as? [String: Any])?["schemas"] as? [String: Any])
        let problem = try XCTUnwrap((schemas["Problem"] as? [String: Any])?["properties"] as? [String: Any])
        let names = try XCTUnwrap((problem["limitName"] as? [String: Any])?["enum"] as? [String])
        XCTAssertEqual(names, ResourceLimits.Name.allCases.map(\.rawValue))
    }

    func testConsoleAddsOnlyHTMLRoutesOutsideTheAPI() throws {
        let api = Self.apiRouter()
        var served = api
        BrokerConsole.register(on: &served, api: api)
        let apiRoutes = Set(api.routes.map { "\($0.method) \($0.pattern)" })
        let consoleRoutes = served.routes.map { "\($0.method) \($0.pattern)" }.filter { !apiRoutes.contains($0) }
        XCTAssertGreaterThan(consoleRoutes.count, 10)
        let documentedPaths = Set(try Self.documentedOperations().map { $0.split(separator: " ")[1] })
        for route in consoleRoutes {
            let path = route.split(separator: " ")[1]
            XCTAssertTrue(path == "/" || path == "/console" || path.hasPrefix("/console/"), route)
            XCTAssertFalse(documentedPaths.contains(path), route)
        }
    }

    func testRouterAndDocumentDeclareTheSameOperations() throws {
        let documented = try Self.documentedOperations()
        let routed = Self.routedOperations()
        XCTAssertFalse(routed.isEmpty)
        XCTAssertEqual(
            routed.subtracting(documented).sorted(), [], "routes the document does not describe")
        XCTAssertEqual(
            documented.subtracting(routed).sorted(), [], "documented operations the router does not answer")
    }

    func testEveryOperationDeclaresSecurityAndProblemAnswers() throws {
        let document = try XCTUnwrap(try Yams.load(yaml: Self.documentText()) as? [String: Any])
        let components = try XCTUnwrap(document["components"] as? [String: Any])
        let schemes = try XCTUnwrap(components["securitySchemes"] as? [String: Any])
        let bearer = try XCTUnwrap(schemes["bearerAuth"] as? [String: Any])
        XCTAssertEqual(bearer["type"] as? String, "http")
        XCTAssertEqual(bearer["scheme"] as? String, "bearer")
        let paths = try XCTUnwrap(document["paths"] as? [String: Any])
        for (path, item) in paths {
            for (method, operation) in try XCTUnwrap(item as? [String: Any]) where Self.httpMethods.contains(method) {
                let operation = try XCTUnwrap(operation as? [String: Any])
                let responses = try XCTUnwrap(operation["responses"] as? [String: Any], "\(method) \(path)")
                let secured = (operation["security"] as? [Any]).map { !$0.isEmpty } ?? true
                if secured {
                    XCTAssertNotNil(responses["401"], "\(method) \(path) answers 401")
                }
                if operation["requestBody"] != nil {
                    for status in ["400", "413", "415", "422"] {
                        XCTAssertNotNil(responses[status], "\(method) \(path) answers \(status)")
                    }
                }
            }
        }
    }

    /// The document compiled into the broker is the one in `openapi/`.
    func testServedDocumentIsTheRepositoryDocument() async throws {
        let broker = try TestBroker()
        let response = try await broker.call("GET", "/openapi.yaml")
        await broker.stop()
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.header("Content-Type"), "application/yaml")
        XCTAssertEqual(response.text, try Self.documentText(),
                       "the served document is openapi/openapi.yaml (Sources/BrokerAPI/OpenAPI links to openapi/)")
    }

    /// A method the document does not declare for a known path: 405 with `Allow`, never 501.
    func testUndeclaredMethodsAnswer405WithAllowAndARequestId() async throws {
        let broker = try TestBroker()
        let cases: [(method: String, path: String, allow: String)] = [
            ("PUT", "/v1/allocations", "GET, POST"),
            ("POST", "/v1/allocations/0b6f8f4e-2a4e-4f0b-9d1c-3c2b1a0f9e8d", "DELETE, GET, PATCH"),
            ("PATCH", "/v1/regions", "GET"),
            ("DELETE", "/healthz", "GET"),
            ("OPTIONS", "/v1/sizing", "POST"),
            ("POST", "/v1/policies/x", "DELETE, GET, PUT"),
            ("FOO", "/v1/inventory", "GET"),
        ]
        for (method, path, allow) in cases {
            let response = try await broker.call(method, path, token: broker.adminToken)
            XCTAssertEqual(response.status, 405, "\(method) \(path)")
            XCTAssertEqual(response.header("Allow"), allow, "\(method) \(path)")
            XCTAssertEqual(response.header("Content-Type"), "application/problem+json", "\(method) \(path)")
            XCTAssertEqual(response.json["code"], "method_not_allowed", "\(method) \(path)")
            XCTAssertNotNil(response.header("X-Request-Id"), "\(method) \(path)")
        }
        let unknown = try await broker.call("GET", "/v2/nothing")
        XCTAssertEqual(unknown.status, 404)
        XCTAssertEqual(unknown.json["code"], "not_found")
        XCTAssertNotNil(unknown.header("X-Request-Id"))
        let echoed = try await broker.call("GET", "/v2/nothing", headers: ["X-Request-Id": "trace-42"])
        XCTAssertEqual(echoed.header("X-Request-Id"), "trace-42")
        await broker.stop()
    }
}
