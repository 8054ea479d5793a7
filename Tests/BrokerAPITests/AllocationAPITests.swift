import BrokerCore
import BrokerStore
import Foundation
import JSON
import TestSupport
import XCTest

/// Through the router in-process: the same handlers as over a socket, without HTTP
/// (the socket path is covered by the other suites of this target).
final class AllocationAPITests: XCTestCase {
    var broker: TestBroker!
    var token: String!

    override func setUp() async throws {
        broker = try TestBroker(transport: .inProcess)
        token = try await broker.tenant().token
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func allocate(_ body: JSONValue, token: String? = nil) async throws -> TestBroker.Response {
        try await broker.call("POST", "/v1/allocations", token: token ?? self.token, json: body)
    }

    func regionsOf(_ response: TestBroker.Response) -> [String] {
        response.json["instances"]!.array.map { $0["region"]!.string! }
    }

    func verifyLedger() async throws {
        let report = try await LedgerCheck.run(broker)
        XCTAssertTrue(report.isEmpty, "ledger: \(report)")
    }

    // Seed scenario: CPU and GPU in the default (primary) region.
    func testCPUAndGPUReplicasGoToThePrimaryRegion() async throws {
        try await broker.region("cn-beijing")
        try await broker.region("cn-hangzhou")
        try await broker.pool("cn-beijing", "t4", series: "T4", gpuMemory: 16, capacity: 10, price: 2)
        try await broker.pool("cn-hangzhou", "t4", series: "T4", gpuMemory: 16, capacity: 10, price: 1)
        try await broker.pool("cn-beijing", "cpu", cpu: 2, memory: 4, capacity: 10)
        let answer = try await allocate(["computeClass": "gpu", "gpuSeries": ["T4"], "cpu": 4, "memoryGiB": 16, "replicas": 2])
        XCTAssertEqual(answer.status, 201, answer.text)
        let gpu = try answer.decode(AllocationView.self)
        XCTAssertEqual(gpu.status, .active)
        XCTAssertEqual(gpu.placedReplicas, 2)
        XCTAssertEqual(gpu.instances.map(\.region), ["cn-beijing", "cn-beijing"])
        let instance = try XCTUnwrap(gpu.instances.first)
        XCTAssertEqual(instance.gpuSeries, "T4")
        XCTAssertEqual(instance.vpcId, "vpc-cn-beijing")
        XCTAssertEqual(instance.labels["topology.kubernetes.io/region"], "cn-beijing")
        XCTAssertEqual(instance.labels["node.kubernetes.io/instance-type"], "ecs.t4")
        let lease = try XCTUnwrap(gpu.leaseExpiresAt)
        XCTAssertEqual(lease.timeIntervalSince(gpu.createdAt), Double(gpu.leaseSeconds), accuracy: 0.01)
        let cpu = try await allocate(["computeClass": "general-purpose", "cpu": 1, "memoryGiB": 2, "replicas": 3])
        XCTAssertEqual(cpu.status, 201, cpu.text)
        XCTAssertEqual(regionsOf(cpu), ["cn-beijing", "cn-beijing", "cn-beijing"])
        try await verifyLedger()
    }

    // Seed scenario: a pinned pod stays in its region, even when that region is empty.
    func testPinnedRegionNeverFallsBack() async throws {
        try await broker.region("cn-beijing")
        try await broker.region("cn-hangzhou")
        try await broker.pool("cn-beijing", "t4", series: "T4", capacity: 1)
        try await broker.pool("cn-hangzhou", "t4", series: "T4", capacity: 10)
        let pinned = try await allocate(
            ["computeClass": "gpu", "gpuSeries": ["T4"], "cpu": 4, "memoryGiB": 16, "replicas": 2, "region": "cn-hangzhou"])
        XCTAssertEqual(pinned.status, 201)
        XCTAssertEqual(regionsOf(pinned), ["cn-hangzhou", "cn-hangzhou"])
        let tooMany = try await allocate(
            ["computeClass": "gpu", "gpuSeries": ["T4"], "cpu": 4, "memoryGiB": 16, "replicas": 2, "region": "cn-beijing"])
        XCTAssertEqual(tooMany.status, 409)
        XCTAssertEqual(tooMany.json["code"], "insufficient_capacity")
        XCTAssertFalse(tooMany.json["decisions"]!.array.isEmpty)
        try await verifyLedger()
    }

    // Seed scenario: the primary is out of stock, the rest goes to a secondary.
    func testPrimaryOutOfStockFallsBackToASecondary() async throws {
        try await broker.region("cn-beijing")
        try await broker.region("cn-hangzhou")
        try await broker.region("cn-zhangjiakou")
        try await broker.pool("cn-beijing", "t4", series: "T4", capacity: 1, price: 1)
        try await broker.pool("cn-hangzhou", "t4", series: "T4", capacity: 10, price: 3)
        try await broker.pool("cn-zhangjiakou", "t4", series: "T4", capacity: 10, price: 2)
        let response = try await allocate(["computeClass": "gpu", "gpuSeries": ["T4"], "cpu": 4, "memoryGiB": 16, "replicas": 4])
        XCTAssertEqual(response.status, 201, response.text)
        XCTAssertEqual(regionsOf(response), ["cn-beijing", "cn-zhangjiakou", "cn-zhangjiakou", "cn-zhangjiakou"])
        let reasons = response.json["decisions"]!.array.map { $0["region"]!.string! }
        XCTAssertEqual(reasons.first, "cn-beijing")
        try await verifyLedger()
    }

    // Seed scenario: four replicas divided over two clusters by available inventory.
    func testSpreadDividesReplicasByAvailableInventory() async throws {
        try await broker.region("a")
        try await broker.region("b")
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 2)
        try await broker.pool("b", "cpu", cpu: 2, memory: 4, capacity: 2)
        let response = try await allocate([
            "computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 4,
            "placement": ["strategy": "spread", "units": [["regions": ["a", "b"]]]],
        ])
        XCTAssertEqual(response.status, 201, response.text)
        XCTAssertEqual(regionsOf(response).sorted(), ["a", "a", "b", "b"])
    }

    // Seed scenario: on-premises first (max 3), then serverless; scale 2 → 4 → 2.
    func testUnitsWithMaxScaleOutAndScaleInReverseOrder() async throws {
        try await broker.region("cn-beijing")
        try await broker.region("idc", kind: "on-premises")
        try await broker.pool("idc", "rack", cpu: 2, memory: 4, capacity: 10, price: 0)
        try await broker.pool("cn-beijing", "g8i", cpu: 2, memory: 4, capacity: 10, price: 1)
        let placement: JSONValue = [
            "strategy": "prefer", "units": [["regions": ["idc"], "max": 3], ["regions": ["*"]]],
        ]
        let created = try await allocate(
            ["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 2, "placement": placement])
        XCTAssertEqual(created.status, 201, created.text)
        XCTAssertEqual(regionsOf(created), ["idc", "idc"])
        let id = created.json["id"]!.string!
        let out = try await broker.call("PATCH", "/v1/allocations/\(id)", token: token, json: ["replicas": 4])
        XCTAssertEqual(out.status, 200, out.text)
        let running = out.json["instances"]!.array.filter { $0["state"] == "running" }
        XCTAssertEqual(running.map { $0["region"]!.string! }, ["idc", "idc", "idc", "cn-beijing"])
        XCTAssertEqual(running.map { $0["unit"]!.int! }, [0, 0, 0, 1])
        let back = try await broker.call("PATCH", "/v1/allocations/\(id)", token: token, json: ["replicas": 2])
        XCTAssertEqual(back.status, 200, back.text)
        let left = back.json["instances"]!.array.filter { $0["state"] == "running" }
        // The serverless replica goes first, then the newest on-premises one.
        XCTAssertEqual(left.map { $0["region"]!.string! }, ["idc", "idc"])
        XCTAssertEqual(back.json["placedReplicas"], 2)
        XCTAssertEqual(back.json["replicas"], 2)
        // Shown as it is: the released replicas as released (not idle), the grant's decisions superseded.
        XCTAssertEqual(back.json["instances"]!.array.map { $0["state"]!.string! }.sorted(), ["released", "released", "running", "running"])
        let reasons = back.json["decisions"]!.array.map { $0["region"]!.string! + ": " + $0["reason"]!.string! }
        XCTAssertEqual(Array(reasons.prefix(2)), [
            "idc: scaled in to 2: kept 2 of 3, released 1 (last unit first, newest first)",
            "cn-beijing: scaled in to 2: kept 0 of 1, released 1 (last unit first, newest first)",
        ])
        XCTAssertTrue(reasons.dropFirst(2).allSatisfy { $0.contains(": superseded by a scale-in: ") }, "\(reasons)")
        try await verifyLedger()
    }

    // Seed scenario: units pin one replica to region A and two to region B.
    func testUnitsPinReplicaCountsPerRegion() async throws {
        try await broker.region("region-a")
        try await broker.region("region-b")
        try await broker.pool("region-a", "cpu", cpu: 2, memory: 4, capacity: 10)
        try await broker.pool("region-b", "cpu", cpu: 2, memory: 4, capacity: 10)
        let response = try await allocate([
            "computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 3,
            "placement": ["units": [["regions": ["region-a"], "max": 1], ["regions": ["region-b"], "max": 2]]],
        ])
        XCTAssertEqual(response.status, 201, response.text)
        XCTAssertEqual(regionsOf(response), ["region-a", "region-b", "region-b"])
    }

    func testInstancesGoRoundRobinOverVSwitches() async throws {
        try await broker.region("a", vSwitches: ["vsw-1", "vsw-2", "vsw-3"])
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 10)
        let response = try await allocate(["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 4])
        XCTAssertEqual(response.json["instances"]!.array.map { $0["vSwitchId"]!.string! }, ["vsw-1", "vsw-2", "vsw-3", "vsw-1"])
    }

    func testAllOrNothingFalseGivesPartial() async throws {
        try await broker.region("a")
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 3)
        let none = try await allocate(["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 5])
        XCTAssertEqual(none.status, 409)
        let inventory = try await broker.call("GET", "/v1/regions/a/inventory", token: token)
        XCTAssertEqual(inventory.json["pools"]?[0]?["allocated"], 0, "a refused request reserves nothing")
        let partial = try await allocate(
            ["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 5, "allOrNothing": false])
        XCTAssertEqual(partial.status, 201)
        XCTAssertEqual(partial.json["status"], "partial")
        XCTAssertEqual(partial.json["placedReplicas"], 3)
        XCTAssertEqual(partial.json["replicas"], 5)
        try await verifyLedger()
    }

    func testCordonedRegionGetsNothingNew() async throws {
        try await broker.region("a")
        try await broker.region("b", state: "cordoned")
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 1)
        try await broker.pool("b", "cpu", cpu: 2, memory: 4, capacity: 10)
        let response = try await allocate(["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 2])
        XCTAssertEqual(response.status, 409)
        XCTAssertTrue(response.text.contains("cordoned"), response.text)
    }

    func testReleaseRenewEventsAndLifecycleConflicts() async throws {
        try await broker.region("a")
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 2)
        let created = try await allocate(
            ["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 2, "leaseSeconds": 60])
        let id = created.json["id"]!.string!
        let renewed = try await broker.call("POST", "/v1/allocations/\(id)/renew", token: token, json: ["leaseSeconds": 600])
        XCTAssertEqual(renewed.status, 200, renewed.text)
        XCTAssertEqual(renewed.json["leaseSeconds"], 600)
        let released = try await broker.call("DELETE", "/v1/allocations/\(id)", token: token)
        XCTAssertEqual(released.status, 200)
        XCTAssertEqual(released.json["status"], "released")
        XCTAssertEqual(Set(released.json["instances"]!.array.map { $0["state"]!.string! }), ["released"],
                       "the pool keeps them warm (idle); the allocation no longer holds them")
        let again = try await broker.call("DELETE", "/v1/allocations/\(id)", token: token)
        XCTAssertEqual(again.status, 409)
        let renewReleased = try await broker.call("POST", "/v1/allocations/\(id)/renew", token: token)
        XCTAssertEqual(renewReleased.status, 409)
        let scaleReleased = try await broker.call("PATCH", "/v1/allocations/\(id)", token: token, json: ["replicas": 3])
        XCTAssertEqual(scaleReleased.status, 409)
        let events = try await broker.call("GET", "/v1/allocations/\(id)/events", token: token)
        XCTAssertEqual(events.json["events"]!.array.map { $0["kind"]!.string! }, ["reserved", "reserved", "renewed", "released", "released"])
        let seqs = events.json["events"]!.array.map { $0["seq"]!.int! }
        XCTAssertEqual(seqs, seqs.sorted())
        // Idle instances are reused by the next grant on the pool: same ids, reused.
        let next = try await allocate(["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 2])
        XCTAssertEqual(next.status, 201, next.text)
        XCTAssertEqual(
            Set(next.json["instances"]!.array.map { $0["id"]!.string! }),
            Set(released.json["instances"]!.array.map { $0["id"]!.string! }))
        XCTAssertTrue(next.json["instances"]!.array.allSatisfy { $0["reused"] == .bool(true) })
        try await verifyLedger()
    }

    // The read is one statement joining instances to the allocation: each instance once, in
    // the order they were placed, and a queued allocation without any answers an empty list.
    func testReadAnswersEachInstanceOnceInOrderAndNoneWhileQueued() async throws {
        try await broker.region("a")
        try await broker.region("b")
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 2, price: 1)
        try await broker.pool("b", "cpu", cpu: 2, memory: 4, capacity: 2, price: 2)
        let created = try await allocate(["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 3])
        XCTAssertEqual(created.status, 201, created.text)
        let granted = try created.decode(AllocationView.self)
        let read = try await broker.call("GET", "/v1/allocations/\(granted.id)", token: token)
        XCTAssertEqual(read.status, 200, read.text)
        XCTAssertEqual(try read.decode(AllocationView.self), granted)
        XCTAssertEqual(granted.instances.map(\.region), ["a", "a", "b"])
        let queued = try await allocate(
            ["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 2, "queue": true])
        XCTAssertEqual(queued.status, 202, queued.text)
        let waiting = try await broker.call("GET", "/v1/allocations/\(queued.json["id"]!.string!)", token: token)
        XCTAssertEqual(waiting.status, 200, waiting.text)
        XCTAssertEqual(waiting.json["status"], "pending")
        XCTAssertEqual(waiting.json["instances"], .array([]))
        let stranger = try await broker.tenant("stranger").token
        let hidden = try await broker.call("GET", "/v1/allocations/\(granted.id)", token: stranger)
        XCTAssertEqual(hidden.status, 404, hidden.text)
    }

    func testListPaginationIsStableAndScopedToTheTenant() async throws {
        try await broker.region("a")
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 100)
        var ids: [String] = []
        for _ in 0..<5 {
            ids.append(try await allocate(["computeClass": "general-purpose", "cpu": 1, "memoryGiB": 1, "replicas": 1]).json["id"]!.string!)
        }
        let other = try await broker.tenant("other").token
        _ = try await allocate(["computeClass": "general-purpose", "cpu": 1, "memoryGiB": 1, "replicas": 1], token: other)
        var seen: [String] = []
        var cursor: String? = nil
        repeat {
            let page = try await broker.call(
                "GET", "/v1/allocations?limit=2" + (cursor.map { "&cursor=\($0)" } ?? ""), token: token)
            XCTAssertEqual(page.status, 200, page.text)
            seen += page.json["allocations"]!.array.map { $0["id"]!.string! }
            cursor = page.json["nextCursor"]?.string
        } while cursor != nil
        XCTAssertEqual(seen, ids.reversed(), "newest first")
        _ = try await broker.call("DELETE", "/v1/allocations/\(ids[1])", token: token)
        let released = try await broker.call("GET", "/v1/allocations?status=released", token: token)
        XCTAssertEqual(released.json["allocations"]!.array.map { $0["id"]!.string! }, [ids[1]])
        let inRegion = try await broker.call("GET", "/v1/allocations?region=a&limit=100", token: token)
        XCTAssertEqual(inRegion.json["allocations"]!.array.count, 5)
        let elsewhere = try await broker.call("GET", "/v1/allocations?region=b", token: token)
        XCTAssertEqual(elsewhere.json["allocations"]!.array.count, 0)
        XCTAssertEqual(elsewhere.json["nextCursor"], .null)
        let otherSees = try await broker.call("GET", "/v1/allocations/\(ids[0])", token: other)
        XCTAssertEqual(otherSees.status, 404)
        let badLimit = try await broker.call("GET", "/v1/allocations?limit=0", token: token)
        XCTAssertEqual(badLimit.status, 422)
        let malformed = try await broker.call("GET", "/v1/allocations/not-a-uuid", token: token)
        XCTAssertEqual(malformed.status, 404)
    }

    func testInvalidAllocationRequestsAreRejectedAndReserveNothing() async throws {
        try await broker.region("a")
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 10)
        let bodies: [JSONValue] = [
            ["computeClass": "gpu", "cpu": 2, "memoryGiB": 4, "replicas": 1],
            ["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 0],
            ["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 1, "leaseSeconds": 5],
            ["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 1, "surprise": true],
            ["computeClass": "quantum", "cpu": 2, "memoryGiB": 4, "replicas": 1],
        ]
        for body in bodies {
            let response = try await allocate(body)
            XCTAssertEqual(response.status, 422, "\(body): \(response.text)")
            let problem = try response.decode(Answers.Problem.self)
            XCTAssertEqual(problem.code, "validation_failed")
            XCTAssertFalse(problem.errors?.isEmpty ?? true, "a 422 names the fields: \(response.text)")
        }
        let admin = try await broker.call(
            "POST", "/v1/allocations", token: broker.adminToken,
            json: ["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 1])
        XCTAssertEqual(admin.status, 403)
        let inventory: Answers.RegionInventory = try await broker.call("GET", "/v1/regions/a/inventory", token: token).decode()
        XCTAssertEqual(inventory.pools.map(\.allocated), [0])
    }
}
