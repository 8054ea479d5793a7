import JSON
import XCTest
@testable import BrokerCore

final class RegionSpecTests: XCTestCase {
    let body = json(#"{"id": "cn-beijing", "vpcId": "vpc-1", "vSwitchIds": ["vsw-a", "vsw-b"], "securityGroupId": "sg-1"}"#)

    func testMinimalWithDefaults() throws {
        let region = try RegionSpec.parse(body)
        XCTAssertEqual(region, Region(id: "cn-beijing", vpcId: "vpc-1", vSwitchIds: ["vsw-a", "vsw-b"], securityGroupId: "sg-1"))
        XCTAssertEqual(region.kind, .serverless)
        XCTAssertFalse(region.primary)
        XCTAssertEqual(region.state, .active)
        XCTAssertEqual(region.labels, [:])
        XCTAssertNil(region.displayName)
    }

    func testAllFields() throws {
        let region = try RegionSpec.parse(json("""
        {"id": "idc-shanghai", "displayName": "Shanghai DC", "kind": "on-premises", "primary": true,
         "vpcId": "vpc-2", "vSwitchIds": ["vsw-1"], "securityGroupId": "sg-2",
         "labels": {"zone": "east"}, "state": "cordoned"}
        """))
        XCTAssertEqual(region, Region(id: "idc-shanghai", displayName: "Shanghai DC", kind: .onPremises, primary: true,
                                      vpcId: "vpc-2", vSwitchIds: ["vsw-1"], securityGroupId: "sg-2",
                                      labels: ["zone": "east"], state: .cordoned))
    }

    func testIdPattern() {
        for good in ["a", "cn-beijing", "a1", String(repeating: "a", count: 63)] {
            XCTAssertNoThrow(try RegionSpec.parse(with(body, "id", .string(good))), good)
        }
        for bad in ["1a", "-a", "A", "cn_beijing", "cn beijing", String(repeating: "a", count: 64), "é"] {
            assertError("id") { try RegionSpec.parse(with(body, "id", .string(bad))) }
        }
        assertError("id", "required") { try RegionSpec.parse(with(body, "id", nil)) }
    }

    func testNetworkFields() {
        for key in ["vpcId", "securityGroupId"] {
            assertError(key, "required") { try RegionSpec.parse(with(body, key, nil)) }
            assertError(key, "empty") { try RegionSpec.parse(with(body, key, "")) }
            assertError(key, "128") { try RegionSpec.parse(with(body, key, .string(String(repeating: "x", count: 129)))) }
            assertError(key, "string") { try RegionSpec.parse(with(body, key, 1)) }
        }
        assertError("vSwitchIds", "required") { try RegionSpec.parse(with(body, "vSwitchIds", nil)) }
        assertError("vSwitchIds", "empty") { try RegionSpec.parse(with(body, "vSwitchIds", [])) }
        assertError("vSwitchIds[1]", "empty") { try RegionSpec.parse(with(body, "vSwitchIds", ["a", ""])) }
        assertError("vSwitchIds[1]", "duplicate") { try RegionSpec.parse(with(body, "vSwitchIds", ["a", "a"])) }
        assertError("vSwitchIds", "array") { try RegionSpec.parse(with(body, "vSwitchIds", "vsw-a")) }
    }

    func testEnumsAndBooleans() {
        assertError("kind", "one of") { try RegionSpec.parse(with(body, "kind", "cloud")) }
        assertError("state", "one of") { try RegionSpec.parse(with(body, "state", "draining")) }
        assertError("primary", "boolean") { try RegionSpec.parse(with(body, "primary", "yes")) }
        assertError("displayName", "null") { try RegionSpec.parse(with(body, "displayName", JSONValue.null)) }
    }

    func testLabelsAndUnknown() {
        assertError("labels.zone", "string") { try RegionSpec.parse(with(body, "labels", ["zone": true])) }
        assertError("owner", "unknown field") { try RegionSpec.parse(with(body, "owner", "me")) }
    }

    func testSeveralErrors() {
        let bad = json(#"{"id": "X", "vSwitchIds": [], "securityGroupId": 3, "kind": "x", "foo": 1}"#)
        XCTAssertEqual(failingFields { try RegionSpec.parse(bad) }, ["foo", "id", "kind", "securityGroupId", "vSwitchIds", "vpcId"])
    }

    func testPut() throws {
        XCTAssertEqual(try RegionSpec.parse(with(body, "id", nil), pathId: "cn-hangzhou").id, "cn-hangzhou")
        XCTAssertEqual(try RegionSpec.parse(with(body, "id", "cn-hangzhou"), pathId: "cn-hangzhou").id, "cn-hangzhou")
        assertError("id", "path") { try RegionSpec.parse(body, pathId: "cn-hangzhou") }
        assertError("id", "must match") { try RegionSpec.parse(with(body, "id", nil), pathId: "Bad") }
        // echoed timestamps are tolerated
        XCTAssertNoThrow(try RegionSpec.parse(with(body, "createdAt", "2025-01-01T00:00:00Z"), pathId: "cn-beijing"))
    }
}
