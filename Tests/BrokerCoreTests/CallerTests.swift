import BrokerCore
import Foundation
import JSON
import XCTest

final class CallerTests: XCTestCase {
    let tenant = UUID()

    func testARoleOutsideTheRowsRolesIsRefused() {
        let member = Caller(credential: .token(UUID()), tenantId: tenant, role: .member)
        XCTAssertTrue(member.may([.tenantAdmin, .member], scope: .allocationsWrite))
        XCTAssertFalse(member.may([.tenantAdmin], scope: .policiesWrite))
        XCTAssertTrue(Caller.admin.may([.admin], scope: nil))
        XCTAssertFalse(Caller.tenantToken(tenant).may([.admin], scope: nil))
    }

    func testScopesNarrowARoleAndCloseRoutesWithoutAScope() {
        let scoped = Caller(credential: .token(UUID()), tenantId: tenant, role: .tenantAdmin, scopes: [.usageRead])
        XCTAssertTrue(scoped.may([.tenantAdmin, .billing], scope: .usageRead))
        XCTAssertFalse(scoped.may([.tenantAdmin, .member], scope: .allocationsWrite))
        XCTAssertFalse(scoped.may([.tenantAdmin], scope: nil), "a route without a scope (tokens) is closed to scoped tokens")
        let viewer = Caller(credential: .token(UUID()), tenantId: tenant, role: .viewer, scopes: [.allocationsWrite])
        XCTAssertFalse(viewer.may([.tenantAdmin, .member], scope: .allocationsWrite), "a scope never widens the role")
    }

    func testWhoNamesTheCredential() {
        let id = UUID()
        XCTAssertEqual(Caller.admin.who, "admin")
        XCTAssertEqual(Caller.tenantToken(tenant).who, "tenant:\(tenant.uuidString.lowercased())")
        XCTAssertEqual(Caller(credential: .token(id), tenantId: tenant, role: .viewer).who, "token:\(id.uuidString.lowercased())")
        XCTAssertEqual(
            Caller(credential: .openID(issuer: "https://idp.example", subject: "alice"), tenantId: tenant, role: .member).who,
            "oidc:https://idp.example#alice")
    }

    func testATokenSpecDefaultsToMemberAndRefusesAdminAndUnknownScopes() throws {
        let spec = try TokenSpec.parse(["name": "ci", "scopes": ["usage:read"]])
        XCTAssertEqual(spec, TokenSpec(name: "ci", role: .member, scopes: [.usageRead], expiresInSeconds: nil))
        XCTAssertThrowsError(try TokenSpec.parse(["name": "ci", "role": "admin"]))
        XCTAssertThrowsError(try TokenSpec.parse(["name": "ci", "scopes": ["root"]]))
        XCTAssertThrowsError(try TokenSpec.parse(["name": "ci", "expiresInSeconds": 59]))
    }
}
