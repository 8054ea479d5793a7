import BrokerCore
import XCTest

final class ResourceLimitsTests: XCTestCase {
    func testSettingsOverrideDefaultsAndBadOnesNameWhatIsWrong() throws {
        var limits = ResourceLimits()
        XCTAssertEqual(limits[.streamsPerTenant], 64)
        try limits.apply("streams-per-tenant=8")
        XCTAssertEqual(limits[.streamsPerTenant], 8)
        XCTAssertEqual(limits[.webhookEndpointsPerTenant], 25, "the others keep their defaults")
        for bad in ["streams=8", "streams-per-tenant", "streams-per-tenant=0", "streams-per-tenant=many"] {
            XCTAssertThrowsError(try limits.apply(bad), bad) { error in
                XCTAssertTrue("\(error)".contains("limit"), "\(error)")
            }
        }
        XCTAssertEqual(limits[.streamsPerTenant], 8, "a refused setting changes nothing")
    }
}
