import BrokerCore
import Foundation
import JSON
import XCTest

final class ClaimMapTests: XCTestCase {
    let tenant = UUID()

    func testTheFirstRuleWhoseClaimHoldsTheValueWins() throws {
        let map = ClaimMap([
            try ClaimMap.rule("groups=ml-admins:\(tenant):tenant-admin"),
            try ClaimMap.rule("groups=ml:\(tenant):member"),
            try ClaimMap.rule("email=ops@example.com:-:admin"),
        ])
        XCTAssertEqual(map.resolve(["groups": ["ml", "ml-admins"]])?.role, .tenantAdmin)
        XCTAssertEqual(map.resolve(["groups": ["ml"]])?.role, .member)
        XCTAssertEqual(map.resolve(["groups": ["ml"]])?.tenantId, tenant)
        XCTAssertEqual(map.resolve(["email": "ops@example.com"])?.role, .admin)
        XCTAssertNil(map.resolve(["email": "ops@example.com"])?.tenantId)
        XCTAssertNil(map.resolve(["groups": ["interns"]]))
        XCTAssertNil(map.resolve(["groups": "ml-admin"]), "equal, not a prefix")
    }

    func testAValueMayHoldColonsAndBadRulesAreRefused() throws {
        XCTAssertEqual(try ClaimMap.rule("roles=urn:gpu:ml:\(tenant):viewer").value, "urn:gpu:ml")
        for bad in ["groups", "=ml:\(tenant):member", "groups=ml:\(tenant):root", "groups=ml:not-a-uuid:member",
                    "groups=ml:\(tenant):admin", "groups=ml:-:member", "groups=:\(tenant):member"] {
            XCTAssertThrowsError(try ClaimMap.rule(bad), bad)
        }
    }
}
