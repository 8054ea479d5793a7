import BrokerCore
import BrokerStore
import Foundation
import JSON
import PostgresClient
import Synchronization
import TestSupport
import XCTest

/// `dryRun=true` on `POST /v1/allocations`, scale and renew, and the alternatives a
/// queued request is offered, over a real socket and PostgreSQL.
final class DryRunAPITests: XCTestCase {
    var broker: TestBroker!

    override func setUp() async throws {
        broker = try TestBroker()
        try await broker.region("a", primary: true)
        try await broker.region("b")
        // The primary's cheap T4 pool is filled first; its other T4 pool is dear.
        try await broker.pool("a", "t4", series: "T4", gpuMemory: 16, capacity: 2, price: 1, defer: 0)
        try await broker.pool("a", "t4big", series: "T4", gpuMemory: 16, capacity: 4, price: 5, defer: 0)
        try await broker.pool("a", "a10", series: "A10", gpuMemory: 24, capacity: 4, price: 2, defer: 0)
        try await broker.pool("b", "t4", series: "T4", gpuMemory: 16, capacity: 4, price: 3, defer: 0)
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    static func t4(replicas: Int = 2, _ extra: [String: JSONValue] = [:]) -> JSONValue {
        var body: [String: JSONValue] = [
            "computeClass": "gpu", "gpuSeries": ["T4"], "cpu": 2, "memoryGiB": 8, "replicas": .number(Double(replicas)),
        ]
        for (key, value) in extra { body[key] = value }
        return .object(body)
    }

    func dryRun(_ method: String, _ path: String, _ token: String, _ body: JSONValue?) async throws -> Answers.DryRun {
        let before = try DatabaseState.read(broker)
        let response = try await broker.call(method, path + "?dryRun=true", token: token, json: body)
        XCTAssertEqual(response.status, 200, response.text)
        XCTAssertEqual(try DatabaseState.read(broker), before, "the dry run changed the database")
        return try response.decode(Answers.DryRun.self)
    }

    func testADryRunGrantSaysWhatWouldBeGrantedAndItsPriceAndKeepsNothing() async throws {
        let team = try await broker.tenant("team", quota: ["gpus": 5, "spendPerMonth": 100])
        let dry = try await dryRun("POST", "/v1/allocations", team.token, Self.t4())
        XCTAssertTrue(dry.dryRun)
        XCTAssertEqual(dry.outcome, .granted)
        XCTAssertEqual(dry.status, 201)
        XCTAssertEqual(dry.pricePerHour, 2, "two T4 at 1 per hour")
        XCTAssertEqual(dry.allocation?.instances.map(\.poolId), ["t4", "t4"])
        XCTAssertEqual(dry.decisions, dry.allocation?.decisions)
        let gpus = try XCTUnwrap(dry.limits.first { $0.name == "gpus" })
        XCTAssertEqual([gpus.limit, gpus.used, gpus.requested, gpus.remaining], [5, 0, 2, 3])
        let spend = try XCTUnwrap(dry.limits.first { $0.name == "spendPerMonth" })
        XCTAssertEqual(spend.requested, 2.0 * 300 / 3600, accuracy: 1e-6, "two instances at 1 per hour for a 300 s lease")
        XCTAssertEqual(dry.limits.map(\.name), ["gpus", "spendPerMonth"], "only the limits that are set")
        XCTAssertNil(dry.queue)
        let listed = try await broker.call("GET", "/v1/allocations", token: team.token)
        XCTAssertEqual(listed.json["allocations"]?.arrayValue?.count, 0)
        // The real request does what the dry run said.
        let real = try await broker.call("POST", "/v1/allocations", token: team.token, json: Self.t4())
        XCTAssertEqual(real.status, 201, real.text)
        XCTAssertEqual(try real.decode(AllocationView.self).instances.map(\.poolId), ["t4", "t4"])
    }

    func testADryRunRefusalCarriesTheProblemTheRequestWouldAnswer() async throws {
        let team = try await broker.tenant("team", quota: ["instances": 1])
        let overQuota = try await dryRun("POST", "/v1/allocations", team.token, Self.t4())
        XCTAssertEqual(overQuota.outcome, .refused)
        XCTAssertEqual(overQuota.status, 403)
        XCTAssertEqual(overQuota.problem?.code, "quota_exceeded")
        XCTAssertEqual(overQuota.limits.first?.remaining, -1, "1 allowed, 2 requested")
        XCTAssertNil(overQuota.allocation)
        let other = try await broker.tenant("other")
        let tooMany = try await dryRun("POST", "/v1/allocations", other.token, Self.t4(replicas: 7, ["region": "a"]))
        XCTAssertEqual(tooMany.status, 409)
        XCTAssertEqual(tooMany.problem?.code, "insufficient_capacity")
        XCTAssertEqual(tooMany.problem?.decisions, tooMany.decisions)
        let real = try await broker.call("POST", "/v1/allocations", token: other.token, json: Self.t4(replicas: 7, ["region": "a"]))
        XCTAssertEqual(real.status, 409)
        XCTAssertEqual(try real.decode(Answers.Problem.self).decisions, tooMany.decisions)
    }

    func testADryRunOverBudgetSaysWhatRemains() async throws {
        let team = try await broker.tenant("team", quota: ["spendPerMonth": 0.1])
        let dry = try await dryRun("POST", "/v1/allocations", team.token, Self.t4(["leaseSeconds": 3600]))
        XCTAssertEqual(dry.status, 403)
        XCTAssertEqual(dry.problem?.code, "budget_exceeded")
        let spend = try XCTUnwrap(dry.limits.first { $0.name == "spendPerMonth" })
        XCTAssertEqual(spend.requested, 2, accuracy: 1e-6)
        XCTAssertEqual(spend.remaining, -1.9, accuracy: 1e-6)
    }

    /// A queued request gets its position, an estimate, and what fits now instead, each
    /// a body that is then granted when sent.
    func testAQueuedRequestIsOfferedAlternativesThatFitNow() async throws {
        let first = try await broker.tenant("first")
        let filled = try await broker.call("POST", "/v1/allocations", token: first.token, json: Self.t4())
        XCTAssertEqual(filled.status, 201, filled.text)
        let capped: [String: JSONValue] = ["queue": true, "maxPricePerHour": 4, "region": "a"]
        // Queued by a tenant that holds nothing, like team: equal fair shares, so the older comes first.
        let queued = try await broker.tenant("queued")
        let waiting = try await broker.call("POST", "/v1/allocations", token: queued.token, json: Self.t4(replicas: 1, capped))
        XCTAssertEqual(waiting.status, 202)

        let team = try await broker.tenant("team")
        let request = Self.t4(capped)
        let dry = try await dryRun("POST", "/v1/allocations", team.token, request)
        XCTAssertEqual(dry.outcome, .queued)
        XCTAssertEqual(dry.status, 202)
        XCTAssertEqual(dry.allocation?.status, .pending)
        XCTAssertEqual(dry.queue?.position, 2, "behind the pending T4 request")
        XCTAssertEqual(dry.queue?.replicasAhead, 1)
        XCTAssertEqual(dry.queue?.pools, ["a/t4"])
        let alternatives = try XCTUnwrap(dry.alternatives)
        XCTAssertEqual(alternatives.map(\.change), [.gpuSeries, .region, .maxPricePerHour], "cheapest first")
        XCTAssertEqual(alternatives.map(\.pricePerHour), [4, 6, 10])
        XCTAssertEqual(alternatives[0].gpuSeries, "A10")
        XCTAssertEqual(alternatives[0].request["region"], "a", "the model alternative keeps the region")
        XCTAssertEqual(alternatives[1].region, "b")
        XCTAssertEqual(alternatives[1].request["gpuSeries"], ["T4"], "the region alternative keeps the model")
        XCTAssertEqual(alternatives[2].maxPricePerHour, 5, "the dear T4 pool's price lets it in")

        let real = try await broker.call("POST", "/v1/allocations", token: team.token, json: request)
        XCTAssertEqual(real.status, 202)
        XCTAssertEqual(try real.decode(AllocationView.self).alternatives, alternatives)
        for alternative in alternatives {
            let other = try await broker.tenant("try-\(alternative.change.rawValue)")
            let sent = try await broker.call("POST", "/v1/allocations", token: other.token, json: alternative.request)
            XCTAssertEqual(sent.status, 201, "\(alternative.change): \(sent.text)")
            XCTAssertEqual(try sent.decode(AllocationView.self).placedReplicas, alternative.placedReplicas)
            _ = try await broker.call("DELETE", "/v1/allocations/\(try sent.decode(AllocationView.self).id)", token: other.token)
        }
    }

    func testADryRunScaleAndRenewChangeNothingAndNoNotificationIsSent() async throws {
        let team = try await broker.tenant("team")
        let created = try await broker.call("POST", "/v1/allocations", token: team.token, json: Self.t4())
        let id = try created.decode(AllocationView.self).id
        let heard = Mutex<[String]>([])
        let listener = PostgresListener(
            configuration: PostgresConfiguration(url: broker.databaseURL), channels: ChangeChannel.all
        ) { event in
            if case .notification(let channel, _) = event { heard.withLock { $0.append(channel) } }
        }
        defer { listener.stop() }
        try await Task.sleep(for: .milliseconds(300))

        let scaleOut = try await dryRun("PATCH", "/v1/allocations/\(id)", team.token, ["replicas": 20])
        XCTAssertEqual(scaleOut.status, 409, "10 T4 in all")
        let scaleOutFits = try await dryRun("PATCH", "/v1/allocations/\(id)", team.token, ["replicas": 4])
        XCTAssertEqual(scaleOutFits.pricePerHour, 2 + 2 * 5, "two more on the dear pool")
        let scaleIn = try await dryRun("PATCH", "/v1/allocations/\(id)", team.token, ["replicas": 1])
        XCTAssertEqual(scaleIn.outcome, .granted)
        XCTAssertEqual(scaleIn.status, 200)
        XCTAssertEqual(scaleIn.allocation?.placedReplicas, 1)
        XCTAssertEqual(scaleIn.pricePerHour, 1)
        let renew = try await dryRun("POST", "/v1/allocations/\(id)/renew", team.token, ["leaseSeconds": 7200])
        XCTAssertEqual(renew.allocation?.leaseSeconds, 7200)
        XCTAssertEqual(renew.pricePerHour, 2)
        let now = try await broker.call("GET", "/v1/allocations/\(id)", token: team.token)
        XCTAssertEqual(try now.decode(AllocationView.self).leaseSeconds, 300)
        XCTAssertEqual(try now.decode(AllocationView.self).placedReplicas, 2)
        try await Task.sleep(for: .milliseconds(500))
        XCTAssertEqual(heard.withLock { $0 }, [], "a rolled-back scale-in notifies nobody")

        // The same scale-in for real is heard: the listener listens.
        let real = try await broker.call("PATCH", "/v1/allocations/\(id)", token: team.token, json: ["replicas": 1])
        XCTAssertEqual(real.status, 200)
        for _ in 0..<40 where heard.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(50)) }
        XCTAssertEqual(heard.withLock { $0 }, [ChangeChannel.inventory])
    }

    func testDryRunErrorsAreTheRealRequestsAndTheFlagIsChecked() async throws {
        let team = try await broker.tenant("team")
        let other = try await broker.tenant("other")
        let created = try await broker.call("POST", "/v1/allocations", token: team.token, json: Self.t4(replicas: 1))
        let id = try created.decode(AllocationView.self).id
        let foreign = try await broker.call("PATCH", "/v1/allocations/\(id)?dryRun=true", token: other.token, json: ["replicas": 2])
        XCTAssertEqual(foreign.status, 404, "another tenant's allocation is unknown")
        let invalid = try await broker.call("POST", "/v1/allocations?dryRun=yes", token: team.token, json: Self.t4())
        XCTAssertEqual(invalid.status, 422)
        XCTAssertEqual(try invalid.decode(Answers.Problem.self).errors?.map(\.field), ["dryRun"])
        let badBody = try await broker.call("POST", "/v1/allocations?dryRun=true", token: team.token, json: ["replicas": 1])
        XCTAssertEqual(badBody.status, 422)
        _ = try await broker.call("DELETE", "/v1/allocations/\(id)", token: team.token)
        let released = try await broker.call("POST", "/v1/allocations/\(id)/renew?dryRun=true", token: team.token)
        XCTAssertEqual(released.status, 409, "a released allocation is not renewed, in a dry run either")
        let explicit = try await broker.call("POST", "/v1/allocations?dryRun=false", token: team.token, json: Self.t4(replicas: 1))
        XCTAssertEqual(explicit.status, 201)
    }

    static func deployment(replicas: Int) -> JSONValue {
        [
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": ["name": "web"],
            "spec": [
                "replicas": .number(Double(replicas)), "selector": ["matchLabels": ["app": "web"]],
                "template": [
                    "metadata": ["labels": ["app": "web", "alibabacloud.com/compute-class": "gpu",
                                            "alibabacloud.com/gpu-model-series": "T4"]],
                    "spec": ["containers": [["name": "web", "image": "nginx",
                                             "resources": ["requests": ["cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"]]]]],
                ],
            ],
        ]
    }

    func testAManifestDryRunAnswersTheFilesAnswerAndKeepsNothing() async throws {
        let team = try await broker.tenant("team")
        let dry = try await dryRun("POST", "/v1/allocations/from-manifest", team.token, Self.deployment(replicas: 3))
        XCTAssertEqual(dry.outcome, .granted)
        XCTAssertEqual(dry.status, 201)
        XCTAssertEqual(dry.pricePerHour, 1 + 1 + 5, "the cheap T4 pool, then the dear one")
        let rehearsed = try await broker.call(
            "POST", "/v1/allocations/from-manifest?dryRun=true", token: team.token, json: Self.deployment(replicas: 3))
        let manifest = try XCTUnwrap(rehearsed.json["manifest"])
        XCTAssertEqual(manifest["allocations"]?.arrayValue?.count, 1)
        XCTAssertEqual(manifest["manifestRegions"], ["a"])
        let real = try await broker.call("POST", "/v1/allocations/from-manifest", token: team.token, json: Self.deployment(replicas: 3))
        XCTAssertEqual(real.status, 201, real.text)
        XCTAssertEqual(real.json["manifests"], manifest["manifests"], "the same documents per region")
        let granted = try real.decode(Answers.Manifest.self).allocation
        XCTAssertEqual(granted.instances.map(\.poolId).sorted(), dry.allocation?.instances.map(\.poolId).sorted())

        let tooMany = try await dryRun("POST", "/v1/allocations/from-manifest", team.token, Self.deployment(replicas: 20))
        XCTAssertEqual(tooMany.status, 409)
        XCTAssertEqual(tooMany.problem?.code, "insufficient_capacity")
    }

    func testTheAdminMayDryRunAnyTenantsScale() async throws {
        let team = try await broker.tenant("team")
        let created = try await broker.call("POST", "/v1/allocations", token: team.token, json: Self.t4(replicas: 1))
        let id = try created.decode(AllocationView.self).id
        let dry = try await dryRun("PATCH", "/v1/admin/allocations/\(id)", broker.adminToken, ["replicas": 2])
        XCTAssertEqual(dry.allocation?.placedReplicas, 2)
        XCTAssertEqual(dry.allocation?.tenantId?.description, team.id)
    }
}
