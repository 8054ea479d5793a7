import Foundation
import JSON
import TestSupport
import XCTest

/// Client commands an operator reaches for in the first week, against a live broker.
final class OperatorCommandTests: XCTestCase {
    var broker: ServedBroker!

    override func setUp() async throws {
        broker = try ServedBroker()
        try await broker.waitReady()
    }

    override func tearDown() async throws {
        broker?.stop()
    }

    func cli(_ arguments: [String], token: String) throws -> Binary.Result {
        try Binary.run(arguments, environment: ["GPUBROKER_URL": broker.url, "GPUBROKER_TOKEN": token])
    }

    func testANegativeNumberIsToldWhatIsWrongWithIt() throws {
        let negative = try cli(["allocate", "--class", "gpu", "--cpu", "-4", "--memory", "15"], token: "unused")
        XCTAssertEqual(negative.status, 2, negative.stderr)
        XCTAssertTrue(negative.stderr.contains("--cpu must be a positive number (got -4)"), negative.stderr)
        let gpus = try cli(["inventory", "--class", "gpu", "--cpu", "4", "--memory", "15", "--gpus", "-1"], token: "unused")
        XCTAssertTrue(gpus.stderr.contains("--gpus must be a whole number, 1 or more (got -1)"), gpus.stderr)
    }

    func testTenantUpdateChangesOnlyTheLimitsGiven() async throws {
        let admin = broker.adminToken
        let created = try cli(["admin", "tenants", "create", "team", "--gpus", "8", "--instances", "4", "-o", "json"], token: admin)
        let id = try XCTUnwrap(created.json["id"]?.string, created.stderr)
        let budget = try cli(["admin", "tenants", "update", id, "--spend-per-month", "100", "-o", "json"], token: admin)
        XCTAssertEqual(budget.json["quota"], ["gpus": 8, "instances": 4, "spendPerMonth": 100], budget.stderr)
        let removed = try cli(["admin", "tenants", "update", id, "--remove-limit", "gpus", "-o", "json"], token: admin)
        XCTAssertEqual(removed.json["quota"], ["instances": 4, "spendPerMonth": 100], removed.stderr)
        let unknown = try cli(["admin", "tenants", "update", id, "--remove-limit", "disks"], token: admin)
        XCTAssertEqual(unknown.status, 2)
        XCTAssertTrue(unknown.stderr.contains("--remove-limit 'disks': not a limit"), unknown.stderr)
        let none = try cli(["admin", "tenants", "update", id, "--unlimited", "-o", "json"], token: admin)
        XCTAssertEqual(none.json["quota"], [:], none.stderr)
    }

    func testTheAdminActsOnAnyTenantsAllocationWithAnyTenant() async throws {
        let admin = broker.adminToken
        for step in [
            ["admin", "regions", "create", "r1", "--vpc-id", "v", "--vswitch", "s", "--security-group", "g"],
            ["admin", "pools", "put", "r1", "cpu", "--class", "general-purpose", "--cpu", "2", "--memory", "4",
             "--instance-type", "ecs.c", "--capacity", "4", "--price", "1"],
        ] {
            XCTAssertEqual(try cli(step + ["-o", "json"], token: admin).status, 0)
        }
        let created = try cli(["admin", "tenants", "create", "team", "-o", "json"], token: admin)
        let (token, tenantId) = (try XCTUnwrap(created.json["token"]?.string), try XCTUnwrap(created.json["id"]?.string))
        let allocated = try cli(["allocate", "--class", "general-purpose", "--cpu", "1", "--memory", "2", "--replicas", "3", "-o", "json"], token: token)
        let id = try XCTUnwrap(allocated.json["id"]?.string, allocated.stderr)

        let refused = try cli(["allocations", "get", id], token: admin)
        XCTAssertEqual(refused.status, 1, "the tenant route needs a tenant token")
        let listed = try cli(["allocations", "list", "--any-tenant", "--tenant", tenantId, "-o", "json"], token: admin)
        XCTAssertEqual(listed.json["allocations"]?.array.compactMap { $0["tenantId"]?.string }, [tenantId], listed.stderr)
        let scaled = try cli(["allocations", "scale", id, "--replicas", "1", "--any-tenant", "-o", "json"], token: admin)
        XCTAssertEqual(scaled.json["placedReplicas"], 1, scaled.stderr)
        let released = try cli(["allocations", "release", id, "--any-tenant", "-o", "json"], token: admin)
        XCTAssertEqual(released.json["status"], "released", released.stderr)
        let events = try cli(["allocations", "events", id, "--any-tenant", "-o", "json"], token: admin)
        XCTAssertTrue(events.json["events"]?.array.contains { $0["actor"] == "admin" } == true, events.stdout)
        let misuse = try cli(["allocations", "list", "--tenant", tenantId], token: admin)
        XCTAssertEqual(misuse.status, 2, misuse.stderr)
    }

    func testAQueuedRequestShowsItsPlaceAndWhyItCanNeverBeMet() async throws {
        let admin = broker.adminToken
        for step in [
            ["admin", "regions", "create", "r1", "--vpc-id", "v", "--vswitch", "s", "--security-group", "g"],
            ["admin", "pools", "put", "r1", "t4", "--class", "gpu", "--series", "T4", "--gpu-memory", "16", "--gpus", "1",
             "--cpu", "4", "--memory", "15", "--instance-type", "ecs.t4", "--capacity", "1", "--price", "1"],
        ] {
            let result = try cli(step + ["-o", "json"], token: admin)
            XCTAssertEqual(result.status, 0, result.stderr)
        }
        let token = try XCTUnwrap(try cli(["admin", "tenants", "create", "team", "-o", "json"], token: admin).json["token"]?.string)
        let shape = ["--class", "gpu", "--series", "T4", "--cpu", "4", "--memory", "15"]
        XCTAssertEqual(try cli(["allocate"] + shape + ["-o", "json"], token: token).status, 0)

        // One vocabulary: the pool table and the shape query agree on what a grant can get.
        let pools = try cli(["inventory", "-o", "table"], token: token).stdout.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }
        XCTAssertEqual(pools.first, "REGION POOL CLASS SERIES GPUS CPU MEMORY INSTANCE TYPE CAPACITY ALLOCATED IDLE AVAILABLE AVAILABLE REPLICAS PRICE/H")
        XCTAssertTrue(pools.dropFirst().first?.hasSuffix("ecs.t4 1 1 0 0 0 1") == true, "\(pools)")

        let waiting = try cli(["allocate"] + shape + ["--queue", "-o", "table"], token: token)
        XCTAssertEqual(waiting.status, 0, waiting.stderr)
        XCTAssertEqual(waiting.stderr, "")
        XCTAssertTrue(waiting.stdout.contains("Queue\nPosition"), waiting.stdout)
        XCTAssertTrue(waiting.stdout.contains("Pools:               r1/t4"), waiting.stdout)

        let hopeless = try cli(["allocate"] + shape + ["--replicas", "2", "--queue", "-o", "json"], token: token)
        XCTAssertEqual(hopeless.status, 0, hopeless.stderr)
        XCTAssertEqual(hopeless.stderr, """
            warning: queued, but unsatisfiable: 2 replicas requested, but the pools of this shape in any region hold 1 in all

            """)
        let id = try XCTUnwrap(hopeless.json["id"]?.string)
        let position = try cli(["allocations", "queue", id, "-o", "json"], token: token)
        XCTAssertEqual(position.status, 0, position.stderr)
        let answer = try await broker.api("GET", "/v1/allocations/\(id)/queue", token: token).body
        XCTAssertEqual(position.json, answer)
        XCTAssertEqual(position.json["position"], 2, position.stdout)
    }
}
