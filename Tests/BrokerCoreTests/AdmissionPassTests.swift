import BrokerCore
import XCTest

final class AdmissionPassTests: XCTestCase {
    func testATenantHeldByItsLimitsIsSkippedForTheRestOfThePass() {
        var pass = AdmissionPass()
        XCTAssertTrue(pass.worthPlanning(tenant: "a", shapeKey: "s", replicas: 1))
        pass.heldByLimits(tenant: "a")
        XCTAssertFalse(pass.worthPlanning(tenant: "a", shapeKey: "other", replicas: 1))
        XCTAssertTrue(pass.worthPlanning(tenant: "b", shapeKey: "s", replicas: 1))
    }

    func testAShapeThatDidNotFitSkipsAsManyReplicasOrMoreOfThatTenantOnly() {
        var pass = AdmissionPass()
        pass.didNotFit(tenant: "a", shapeKey: "t4", replicas: 4, allOrNothing: true)
        XCTAssertFalse(pass.worthPlanning(tenant: "a", shapeKey: "t4", replicas: 4))
        XCTAssertFalse(pass.worthPlanning(tenant: "a", shapeKey: "t4", replicas: 9))
        XCTAssertTrue(pass.worthPlanning(tenant: "a", shapeKey: "t4", replicas: 3), "fewer replicas may fit")
        XCTAssertTrue(pass.worthPlanning(tenant: "a", shapeKey: "l4", replicas: 4))
        XCTAssertTrue(pass.worthPlanning(tenant: "b", shapeKey: "t4", replicas: 4), "another tenant's policies may place it elsewhere")
    }

    func testAPartialRequestThatDidNotFitMeansNoneOfTheShapeFits() {
        var pass = AdmissionPass()
        pass.didNotFit(tenant: "a", shapeKey: "t4", replicas: 8, allOrNothing: false)
        XCTAssertFalse(pass.worthPlanning(tenant: "a", shapeKey: "t4", replicas: 1))
    }
}

extension AdmissionPassTests {
    func testPoolsHeldForAStarvingRequestKeepOthersOffThoseOnly() {
        var pass = AdmissionPass()
        XCTAssertFalse(pass.holdsPools)
        XCTAssertFalse(pass.isHeld(["a/t4"]))
        pass.hold(["a/t4", "b/t4"])
        XCTAssertTrue(pass.holdsPools)
        XCTAssertTrue(pass.isHeld(["b/t4", "a/l4"]), "one held pool among those it could use is enough")
        XCTAssertFalse(pass.isHeld(["a/l4"]))
        XCTAssertFalse(pass.isHeld([]), "a request no pool fits competes with no one")
    }
}
