import BrokerCore
import BrokerStore
import Foundation
import JSON
import TestSupport
import XCTest

/// Issue 29: preemption with notice and a minimum runtime, set per QoS by the admin. (The
/// notice worker and the events over SSE and webhooks, end to end: ReliabilityTests'
/// PreemptionNoticeTests.)
final class PreemptionNoticeTests: XCTestCase {
    var broker: TestBroker!
    var victim: String!
    var preemptor: String!

    override func setUp() async throws {
        broker = try TestBroker()
        victim = try await broker.tenant("victim").token
        preemptor = try await broker.tenant("preemptor").token
        try await broker.region("a")
        try await broker.pool("a", "t4", series: "T4", gpuMemory: 16, capacity: 4)
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func request(_ qos: String, _ replicas: Int) -> JSONValue {
        ["computeClass": "gpu", "gpuSeries": ["T4"], "cpu": 4, "memoryGiB": 16, "qos": .string(qos),
         "replicas": .number(Double(replicas))]
    }

    func setPreemption(notice: Int, minRuntime: Int = 0) async throws {
        let set = try await broker.call(
            "PUT", "/v1/admin/preemption/best-effort", token: broker.adminToken,
            json: ["noticeSeconds": .number(Double(notice)), "minRuntimeSeconds": .number(Double(minRuntime))])
        XCTAssertEqual(set.status, 200, set.text)
    }

    /// With a notice of an hour: a best-effort allocation of four, and a default-QoS one of
    /// `replicas` pending on its instances. Their ids.
    func victimAndWaitingPreemptor(replicas: Int) async throws -> (victim: String, preemptor: String) {
        try await setPreemption(notice: 3600)
        let be = try await broker.call("POST", "/v1/allocations", token: victim, json: request("best-effort", 4))
        XCTAssertEqual(be.status, 201, be.text)
        let urgent = try await broker.call("POST", "/v1/allocations", token: preemptor, json: request("default", replicas))
        XCTAssertEqual(urgent.status, 202, urgent.text)
        return (be.json["id"]!.string!, urgent.json["id"]!.string!)
    }

    func states(_ id: String) async throws -> [String] {
        try await broker.call("GET", "/v1/allocations/\(id)", token: victim).json["instances"]!.array.map { $0["state"]!.string! }
    }

    func testTheAdminSetsNoticeAndMinimumRuntimePerQoSAndBadInputChangesNothing() async throws {
        try await setPreemption(notice: 30, minRuntime: 600)
        let listed = try await broker.call("GET", "/v1/admin/preemption", token: broker.adminToken)
        XCTAssertEqual(listed.status, 200)
        XCTAssertEqual(listed.json["classes"]!.array.map { $0["qos"]!.string! }, ["default", "best-effort"])
        XCTAssertEqual(listed.json["classes"]![1]!["noticeSeconds"], 30)
        XCTAssertEqual(listed.json["classes"]![0]!["noticeSeconds"], 0, "a QoS never set: 0")
        let negative = try await broker.call(
            "PUT", "/v1/admin/preemption/best-effort", token: broker.adminToken, json: ["noticeSeconds": -1, "minRuntimeSeconds": 0])
        XCTAssertEqual(negative.status, 422)
        XCTAssertTrue(negative.text.contains("noticeSeconds"), negative.text)
        let unknown = try await broker.call(
            "PUT", "/v1/admin/preemption/gold", token: broker.adminToken, json: ["noticeSeconds": 1, "minRuntimeSeconds": 0])
        XCTAssertEqual(unknown.status, 404)
        let tenant = try await broker.call(
            "PUT", "/v1/admin/preemption/best-effort", token: victim, json: ["noticeSeconds": 0, "minRuntimeSeconds": 0])
        XCTAssertEqual(tenant.status, 403)
        let after = try await broker.call("GET", "/v1/admin/preemption", token: broker.adminToken)
        XCTAssertEqual(after.json["classes"]![1]!["noticeSeconds"], 30, "refused changes changed nothing")
    }

    /// The victim keeps running under notice (capacity, usage and lease its own); the
    /// preemptor waits as pending on those instances, the victim's tenant sees the deadline,
    /// and the notice worker passes the capacity on once the deadline has come.
    func testAVictimRunsUntilItsDeadlineAndThePreemptorIsAdmittedThen() async throws {
        try await setPreemption(notice: 3600)
        let be = try await broker.call("POST", "/v1/allocations", token: victim, json: request("best-effort", 4))
        XCTAssertEqual(be.status, 201)
        let beId = be.json["id"]!.string!
        let urgent = try await broker.call("POST", "/v1/allocations", token: preemptor, json: request("default", 1))
        XCTAssertEqual(urgent.status, 202, urgent.text)
        XCTAssertEqual(urgent.json["status"], "pending")
        XCTAssertTrue(urgent.json["decisions"]!.array.contains { $0["reason"]!.string!.contains("waiting for 1 preempted instance") })
        let urgentId = urgent.json["id"]!.string!

        let seen = try await broker.call("GET", "/v1/allocations/\(beId)", token: victim)
        XCTAssertEqual(seen.json["status"], "active", "nothing stopped yet")
        XCTAssertEqual(seen.json["placedReplicas"], 4)
        let warned = seen.json["instances"]!.array.filter { $0["state"] == "preempting" }
        XCTAssertEqual(warned.count, 1, seen.text)
        let deadline = try XCTUnwrap(warned.first?["preemptDeadline"]?.string)
        XCTAssertTrue(seen.json["decisions"]!.array.contains { $0["reason"]!.string!.contains("to be preempted at") })
        let events = try await broker.call("GET", "/v1/allocations/\(beId)/events", token: victim)
        XCTAssertEqual(events.json["events"]!.array.last?["kind"], "preempting")
        XCTAssertEqual(events.json["events"]!.array.last?["actor"], "preemption", "the preemptor is not named")
        let inventory = try await broker.call("GET", "/v1/regions/a/inventory", token: victim)
        XCTAssertEqual(inventory.json["pools"]![0]!["allocated"], 4, "the instance still holds its capacity")

        let maintenance = MaintenanceStore(pool: broker.pool)
        let early = try await maintenance.endDuePreemptions()
        XCTAssertEqual(early, 0, "nothing is due before \(deadline)")
        try await broker.pool.withConnection { c in
            try c.query("UPDATE instances SET preempt_deadline = now() WHERE state = 'preempting'")
        }
        let stopped = try await maintenance.endDuePreemptions()
        XCTAssertEqual(stopped, 1)
        let admitted = try await broker.call("GET", "/v1/allocations/\(urgentId)", token: preemptor)
        XCTAssertEqual(admitted.json["status"], "active", "admitted in the transaction that stopped its victim")
        let after = try await states(beId)
        XCTAssertEqual(after.sorted(), ["preempted", "running", "running", "running"])
        let problems = try await LedgerCheck.run(broker)
        XCTAssertEqual(problems, [])
    }

    /// A victim released before its deadline stops at once, and its capacity goes to the
    /// allocation waiting for it in the same transaction, not to whoever asks next.
    func testAVictimReleasedEarlyHandsItsCapacityToThePreemptorAtOnce() async throws {
        let (beId, urgentId) = try await victimAndWaitingPreemptor(replicas: 2)
        let released = try await broker.call("DELETE", "/v1/allocations/\(beId)", token: victim)
        XCTAssertEqual(released.status, 200, released.text)
        let after = try await states(beId)
        XCTAssertEqual(after.filter { $0 == "preempted" }.count, 2, "\(after)")
        XCTAssertFalse(after.contains("running") || after.contains("preempting"), "\(after)")
        let admitted = try await broker.call("GET", "/v1/allocations/\(urgentId)", token: preemptor)
        XCTAssertEqual(admitted.json["status"], "active", admitted.text)
        let problems = try await LedgerCheck.run(broker)
        XCTAssertEqual(problems, [])
    }

    /// A victim whose lease runs out under notice stops then, like a release.
    func testAVictimsLeaseEndingUnderNoticeStopsIt() async throws {
        let (beId, urgentId) = try await victimAndWaitingPreemptor(replicas: 1)
        try await broker.pool.withConnection { c in
            try c.query("UPDATE allocations SET lease_expires_at = now() WHERE id = $1", [UUID(uuidString: beId)!])
        }
        let expired = try await MaintenanceStore(pool: broker.pool).expireLeases()
        XCTAssertEqual(expired, 1)
        let admitted = try await broker.call("GET", "/v1/allocations/\(urgentId)", token: preemptor)
        XCTAssertEqual(admitted.json["status"], "active", admitted.text)
        let problems = try await LedgerCheck.run(broker)
        XCTAssertEqual(problems, [])
    }

    /// A scale-out never breaks a notice: it answers 409 and leaves the victims running.
    func testAScaleOutDoesNotPreemptInstancesOwedNotice() async throws {
        try await setPreemption(notice: 3600)
        let mine = try await broker.call("POST", "/v1/allocations", token: preemptor, json: request("default", 1))
        let be = try await broker.call("POST", "/v1/allocations", token: victim, json: request("best-effort", 3))
        XCTAssertEqual(be.status, 201)
        let scaled = try await broker.call(
            "PATCH", "/v1/allocations/\(mine.json["id"]!.string!)", token: preemptor, json: ["replicas": 2])
        XCTAssertEqual(scaled.status, 409, scaled.text)
        XCTAssertTrue(scaled.text.contains("owed notice"), scaled.text)
        let after = try await states(be.json["id"]!.string!)
        XCTAssertEqual(after, ["running", "running", "running"])
    }

    /// Minimum runtime: an instance younger than its QoS's minimum is never a candidate.
    func testAnInstanceYoungerThanTheMinimumRuntimeIsNeverChosen() async throws {
        try await setPreemption(notice: 0, minRuntime: 3600)
        let be = try await broker.call("POST", "/v1/allocations", token: victim, json: request("best-effort", 4))
        let beId = be.json["id"]!.string!
        let refused = try await broker.call("POST", "/v1/allocations", token: preemptor, json: request("default", 1))
        XCTAssertEqual(refused.status, 409, refused.text)
        let untouched = try await states(beId)
        XCTAssertEqual(untouched, Array(repeating: "running", count: 4))
        // One instance comes of age: that one, and only that one, may go.
        try await broker.pool.withConnection { c in
            try c.query(
                "UPDATE instances SET created_at = now() - interval '2 hours' WHERE seq = (SELECT min(seq) FROM instances)")
        }
        let twice = try await broker.call("POST", "/v1/allocations", token: preemptor, json: request("default", 2))
        XCTAssertEqual(twice.status, 409, "one old instance cannot make room for two")
        let once = try await broker.call("POST", "/v1/allocations", token: preemptor, json: request("default", 1))
        XCTAssertEqual(once.status, 201, once.text)
        let after = try await states(beId)
        XCTAssertEqual(after, ["preempted", "running", "running", "running"], "the oldest, although newest first is the rule")
        let problems = try await LedgerCheck.run(broker)
        XCTAssertEqual(problems, [])
    }
}
