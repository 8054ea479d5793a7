import BrokerCore
import Foundation
import JSON
import TestSupport
import XCTest
import Yams

@testable import BrokerAPI

/// The route table of roles (`RouteRoles.table`) is what the document says and what the
/// broker does: each role is refused (403 problem+json) on every route outside its row,
/// and answered on every route of it.
final class RoleTableTests: XCTestCase {
    var broker: TestBroker!

    override func setUp() async throws {
        broker = try TestBroker()
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func testTheDocumentStatesEachRoutesRolesAndScopeAsTheTableDoes() throws {
        let document = try XCTUnwrap(try Yams.load(yaml: OpenAPIContractTests.documentText()) as? [String: Any])
        let paths = try XCTUnwrap(document["paths"] as? [String: Any])
        var documented: [String: (roles: [String]?, scope: String?)] = [:]
        for (path, item) in paths {
            for (method, operation) in try XCTUnwrap(item as? [String: Any]) where method != "parameters" {
                let operation = try XCTUnwrap(operation as? [String: Any])
                documented["\(method.uppercased()) \(path)"] = (operation["x-roles"] as? [String], operation["x-scope"] as? String)
            }
        }
        for row in RouteRoles.table {
            let key = "\(row.method) \(row.pattern)"
            let stated = try XCTUnwrap(documented[key], "\(key) is in the table, not in the document")
            XCTAssertEqual(stated.roles, row.roles.map { roles in Role.allCases.filter(roles.contains).map(\.rawValue) }, key)
            XCTAssertEqual(stated.scope, row.scope?.rawValue, key)
        }
        XCTAssertEqual(
            Set(documented.keys).subtracting(RouteRoles.table.map { "\($0.method) \($0.pattern)" }), ["GET /healthz"],
            "every documented operation but the synchronous liveness probe has a row")
    }

    /// A token per role: the admin's, the tenant's own (tenant-admin) and named ones.
    func tokensByRole() async throws -> [Role: String] {
        let tenantAdmin = try await broker.tenant("roles").token
        var tokens: [Role: String] = [.admin: broker.adminToken, .tenantAdmin: tenantAdmin]
        for role in [Role.member, .viewer, .billing] {
            let made = try await broker.call("POST", "/v1/tokens", token: tenantAdmin, json: ["name": .string(role.rawValue), "role": .string(role.rawValue)])
            XCTAssertEqual(made.status, 201, made.text)
            tokens[role] = try XCTUnwrap(made.json["token"]?.string)
        }
        return tokens
    }

    /// A path of the pattern, with made-up ids: the role is checked before anything is looked up.
    static func path(_ pattern: String) -> String {
        pattern.replacingOccurrences(of: #"\{[A-Za-z]+\}"#, with: "0190a1b2-0000-7000-8000-000000000000", options: .regularExpression)
    }

    func testEachRoleIsRefusedOnEveryRouteOutsideItsRowAndAnsweredOnThoseInIt() async throws {
        let tokens = try await tokensByRole()
        for row in RouteRoles.table {
            guard let roles = row.roles else { continue }
            for role in Role.allCases {
                let body: JSONValue? = ["POST", "PUT", "PATCH"].contains(row.method) ? [:] : nil
                let answer = try await broker.call(row.method, Self.path(row.pattern), token: tokens[role]!, json: body)
                let what = "\(role.rawValue) on \(row.method) \(row.pattern): \(answer.status) \(answer.text)"
                if roles.contains(role) {
                    XCTAssertNotEqual(answer.status, 403, what)
                    XCTAssertNotEqual(answer.status, 401, what)
                } else {
                    XCTAssertEqual(answer.status, 403, what)
                    XCTAssertEqual(answer.header("Content-Type"), "application/problem+json", what)
                    XCTAssertEqual(answer.json["code"], "forbidden", what)
                    XCTAssertEqual(answer.json["detail"]?.string?.hasSuffix("this caller is \(role.rawValue)"), true, what)
                }
            }
        }
    }
}
