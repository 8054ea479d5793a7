import BrokerCore
import JSON
import XCTest

/// How a file's workloads are granted, decided before any database is asked: each
/// workload's tries in order, the regions a group may use, and the key of every allocation.
final class ManifestGrantPlanTests: XCTestCase {
    func pod(_ name: String, replicas: Int? = nil, specs: String? = nil) -> JSONValue {
        var metadata: JSONValue = ["name": .string(name)]
        if let specs { metadata = metadata.setting(["annotations"], to: ["k8s.aliyun.com/eci-use-specs": .string(specs)]) }
        let spec: JSONValue = ["containers": [["name": "c", "image": "x"]]]
        guard let replicas else { return ["apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec] }
        return ["apiVersion": "apps/v1", "kind": "Deployment", "metadata": ["name": .string(name)],
                "spec": ["replicas": .number(Double(replicas)), "selector": ["matchLabels": ["a": "b"]],
                         "template": ["metadata": metadata, "spec": spec]]]
    }

    let group: JSONValue = [
        "apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "metadata": ["name": "g"],
        "spec": ["replicas": 1, "leaderWorkerTemplate": [
            "size": 2,
            "leaderTemplate": ["spec": ["containers": [["name": "l", "image": "x"]]]],
            "workerTemplate": ["metadata": ["labels": ["topology.kubernetes.io/region": "b"]],
                               "spec": ["containers": [["name": "w", "image": "x"]]]],
        ]],
    ]

    func testEachWorkloadsTriesKeysAndRegionsInDocumentOrder() throws {
        let translated = try ManifestTranslator.plan([
            pod("first", specs: "ecs.a,ecs.b"), pod("idle", replicas: 0), group,
        ])
        let plan = ManifestGrantPlan(translated.workloads, key: "k", groupRegions: ["a", "b", "c"])
        XCTAssertEqual(plan.steps.count, 3)
        guard case .firstOf(let first) = plan.steps[0], case .nothing = plan.steps[1], case .together(let together) = plan.steps[2] else {
            return XCTFail("steps: \(plan.steps)")
        }
        XCTAssertEqual(first.requests.map(\.shape.instanceType), ["ecs.a", "ecs.b"], "instance types tried in the order listed")
        XCTAssertEqual(first.key, "k")
        XCTAssertEqual(together.key, "k#2")
        XCTAssertEqual(together.regions, ["b"], "the worker's pin leaves one region")
        XCTAssertEqual(plan.keys, ["k", "k#2/0", "k#2/1"])
        let pinned = together.pinned(to: "b")
        XCTAssertEqual(pinned.map(\.region), ["b", "b"])
        XCTAssertTrue(pinned.allSatisfy { $0.allOrNothing && !$0.queue && $0.placement == nil })
        XCTAssertEqual(ManifestGrantPlan(translated.workloads, key: nil, groupRegions: ["a"]).keys, [], "no key, none recorded")
    }

    func testTheRefusalOfSeveralTriesNamesEach() throws {
        let translated = try ManifestTranslator.plan([pod("p", specs: "ecs.a,ecs.b")])
        guard case .firstOf(let tries) = ManifestGrantPlan(translated.workloads, key: nil, groupRegions: []).steps[0] else {
            return XCTFail("one workload, one step")
        }
        let (detail, decisions) = tries.refusal([
            ("0 of 1 can be placed", [PlacementDecision(region: "a", replicas: 0, reason: "full")]),
            ("no pool", []),
        ])
        XCTAssertEqual(detail, "no choice the manifest allows can be satisfied: ecs.a: 0 of 1 can be placed; ecs.b: no pool")
        XCTAssertEqual(decisions, [PlacementDecision(region: "a", replicas: 0, reason: "ecs.a: full")])
    }
}
