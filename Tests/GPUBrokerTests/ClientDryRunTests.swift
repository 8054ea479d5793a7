import BrokerCore
import Foundation
import JSON
import TestSupport
import XCTest

/// `--dry-run` on allocate, scale and renew: the broker's answer shown, nothing changed,
/// and the exit status the real request would have.
extension ClientCommandTests {
    func testDryRunShowsWhatWouldHappenAndChangesNothing() async throws {
        let token = try await seed()
        let t4 = ["allocate", "--class", "gpu", "--series", "T4", "--cpu", "4", "--memory", "15"]
        let granted = try cli(t4 + ["--replicas", "4", "--dry-run", "-o", "json"], token: token)
        XCTAssertEqual(granted.status, 0, granted.stderr)
        XCTAssertEqual(granted.json["dryRun"], true)
        XCTAssertEqual(granted.json["outcome"], "granted")
        XCTAssertEqual(granted.json["status"], 201)
        XCTAssertEqual(granted.json["pricePerHour"], 4.5, "three on r1 at 1.5, one on r2 at 0")
        let listed = try await broker.api("GET", "/v1/allocations", token: token).body
        XCTAssertEqual(listed["allocations"], [], "the dry run created nothing")

        let table = try cli(t4 + ["--replicas", "4", "--dry-run", "-o", "table"], token: token)
        XCTAssertTrue(table.stdout.hasPrefix("Dry run:"), table.stdout)
        XCTAssertTrue(table.stdout.contains("would be granted (201); nothing was changed"), table.stdout)
        let limits = table.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        XCTAssertTrue(limits.contains(["gpus", "16", "0", "4", "12"]), "the quota, used, requested, remaining\n\(table.stdout)")

        let refused = try cli(t4 + ["--replicas", "6", "--dry-run", "-o", "json"], token: token)
        XCTAssertEqual(refused.status, 3, "as the real request would exit")
        XCTAssertEqual(refused.json["problem"]?["code"], "insufficient_capacity")
        let queued = try cli(t4 + ["--replicas", "6", "--queue", "--dry-run", "-o", "json"], token: token)
        XCTAssertEqual(queued.status, 0, queued.stderr)
        XCTAssertEqual(queued.json["status"], 202)
        XCTAssertEqual(queued.json["queue"]?["position"], 1)
        XCTAssertEqual(queued.json["alternatives"], [], "no other model or region holds 6")

        let allocated = try cli(t4 + ["--replicas", "2", "-o", "json"], token: token)
        let id = try XCTUnwrap(allocated.json["id"]?.stringValue, allocated.stderr)
        let scaled = try cli(["allocations", "scale", id, "--replicas", "5", "--dry-run", "-o", "json"], token: token)
        XCTAssertEqual(scaled.json["allocation"]?["placedReplicas"], 5, scaled.stderr)
        let renewed = try cli(["allocations", "renew", id, "--lease", "900", "--dry-run", "-o", "json"], token: token)
        XCTAssertEqual(renewed.json["allocation"]?["leaseSeconds"], 900, renewed.stderr)
        let now = try await broker.api("GET", "/v1/allocations/\(id)", token: token).body
        XCTAssertEqual(now["placedReplicas"], 2)
        XCTAssertEqual(now["leaseSeconds"], 300)
        let waits = try cli(t4 + ["--dry-run", "--wait"], token: token)
        XCTAssertEqual(waits.status, 2, "a dry run has nothing to wait for")
    }
}
