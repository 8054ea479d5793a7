import JSON
import XCTest
@testable import BrokerCore

/// The seeds' policy objects (ResourcePolicy, PropagationPolicy, ctyun Policy) read as
/// placement, with plain values: each kind's mapping, selection, refusals and warnings.
final class ManifestPoliciesTests: XCTestCase {
    /// A Deployment of `replicas` pods labelled `labels`.
    func deployment(_ name: String, replicas: Int, labels: [String: String], objectLabels: [String: String] = [:]) -> JSONValue {
        let podLabels = JSONValue.object(labels.mapValues { .string($0) })
        return [
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": ["name": .string(name), "labels": .object(objectLabels.mapValues { .string($0) })],
            "spec": [
                "replicas": .number(Double(replicas)), "selector": ["matchLabels": podLabels],
                "template": [
                    "metadata": ["labels": podLabels],
                    "spec": ["containers": [["name": "nginx", "image": "nginx", "resources": ["requests": ["cpu": 2]]]]],
                ],
            ],
        ]
    }

    /// The seed's ResourcePolicy (ack-registered-cluster-eci-resourcepolicy), as written.
    static let seedResourcePolicy = json("""
        {"apiVersion": "scheduling.alibabacloud.com/v1alpha1", "kind": "ResourcePolicy",
         "metadata": {"name": "cost-balance-policy"},
         "spec": {"selector": {"app": "nginx", "key1": "value1"}, "strategy": "prefer",
                  "units": [{"resource": "idc", "max": 3}, {"resource": "eci", "nodeSelector": {"key2": "value2"}}]}}
        """)

    /// The seed's ctyun Policy with its `<RegionID>`s filled in.
    static let ctyunPolicy = json("""
        {"apiVersion": "scheduling.ctyun.cn/v1", "kind": "Policy",
         "metadata": {"name": "multi-vk-gpu-resourcepolicy", "namespace": "default"},
         "spec": {"selector": {"esx": "nginx-gpu-resourcepolicy"},
                  "units": [{"resource": "bc", "replicas": 1,
                             "schedulerNodeSelector": {"topology.kubernetes.io/region": "cn-a", "spec": "uuid"},
                             "podLabels": {"ctyun.cn/specified-region-id": "cn-a", "ctyun.cn/compute-class": "gpu"}},
                            {"resource": "bc", "replicas": 2,
                             "nodeSelector": {"topology.kubernetes.io/region": "cn-b", "spec": "uuid"},
                             "podLabels": {"ctyun.cn/specified-region-id": "cn-b", "ctyun.cn/compute-qos": "default"}}]}}
        """)

    func propagation(_ placement: String, selectors: String = #"[{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}]"#) -> JSONValue {
        json("""
            {"apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy", "metadata": {"name": "web-policy"},
             "spec": {"resourceSelectors": \(selectors), "placement": \(placement)}}
            """)
    }

    static let staticWeights = """
        {"clusterAffinity": {"clusterNames": ["cn-a", "cn-b"]},
         "replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
           "weightPreference": {"staticWeightList": [{"targetCluster": {"clusterNames": ["cn-a"]}, "weight": 1},
                                                     {"targetCluster": {"clusterNames": ["cn-b"]}, "weight": 2}]}}}
        """

    func inventory(_ capacities: [(String, RegionKind, Int)]) -> [RegionInventory] {
        capacities.enumerated().map { index, entry in
            inv(mkRegion(entry.0, primary: index == 0, kind: entry.1), [cpuPool("p-\(entry.0)", entry.0, cpu: 4, capacity: entry.2)])
        }
    }

    func place(_ plan: ManifestPlan, _ inventory: [RegionInventory], replicas: Int? = nil) -> PlacementPlan {
        let request = plan.workloads[0].requests[0]
        return PlacementPlanner.plan(PlacementInput(
            shape: request.shape, replicas: replicas ?? request.replicas, policy: request.placement, inventory: inventory))
    }

    // MARK: ResourcePolicy

    func testSeedResourcePolicyPlacesOnPremisesFirstThenServerless() throws {
        let selected = deployment("nginx", replicas: 5, labels: ["app": "nginx", "key1": "value1"])
        let plan = try ManifestTranslator.plan([Self.seedResourcePolicy, selected])
        XCTAssertEqual(plan.workloads[0].requests[0].placement, PlacementPolicy(strategy: .prefer, units: [
            PlacementUnit(regions: ["*"], selector: RegionSelector(kind: .onPremises), max: 3),
            PlacementUnit(regions: ["*"], selector: RegionSelector(kind: .serverless)),
        ]))
        XCTAssertEqual(plan.policyOutcomes, [PolicyOutcome(
            kind: "ResourcePolicy", apiVersion: "scheduling.alibabacloud.com/v1alpha1", name: "cost-balance-policy",
            governs: ["Deployment/nginx"])])
        XCTAssertEqual(plan.warnings, [
            "ResourcePolicy cost-balance-policy: spec.units[1].nodeSelector.key2 is ignored: only a region key selects regions in a eci unit",
        ])
        // Kept once, first (as cluster-scoped documents are).
        XCTAssertEqual(plan.entries[0], .passThrough(Self.seedResourcePolicy, clusterScoped: true))
        let placed = place(plan, inventory([("cn-serverless", .serverless, 10), ("idc", .onPremises, 10), ("cn-other", .serverless, 10)]))
        XCTAssertEqual(placed.placements.map(\.region), ["idc", "cn-serverless"])
        XCTAssertEqual(placed.placements.map(\.count), [3, 2])
        XCTAssertEqual(placed.placements.map(\.unit), [0, 1])
    }

    func testSeedAsWrittenSelectsNothingAndPassesThrough() throws {
        // The seed's Deployment labels its pods app=nginx only; the policy also asks for key1=value1.
        let plan = try ManifestTranslator.plan([Self.seedResourcePolicy, deployment("nginx", replicas: 2, labels: ["app": "nginx"])])
        XCTAssertNil(plan.workloads[0].requests[0].placement)
        XCTAssertEqual(plan.policyOutcomes[0].governs, [])
        XCTAssertTrue(plan.warnings.contains(
            "ResourcePolicy cost-balance-policy selects none of the file's workloads: passed through unchanged"), "\(plan.warnings)")
        // Another namespace: not selected either.
        let elsewhere = with(deployment("nginx", replicas: 2, labels: ["app": "nginx", "key1": "value1"]), "metadata",
                             ["name": "nginx", "namespace": "prod"])
        XCTAssertEqual(try ManifestTranslator.plan([Self.seedResourcePolicy, elsewhere]).policyOutcomes[0].governs, [])
    }

    func testUnitResourcesAndNodeSelectors() throws {
        let policy = try XCTUnwrap(try ManifestPolicies.read(json("""
            {"apiVersion": "scheduling.alibabacloud.com/v1alpha1", "kind": "ResourcePolicy", "metadata": {"name": "p"},
             "spec": {"selector": {"app": "a"},
                      "units": [{"resource": "idc", "nodeSelector": {"topology.kubernetes.io/region": "idc-sh"}, "max": 2},
                                {"resource": "ecs", "nodeSelector": {"zone": "east", "alibabacloud.com/serverless-region-id": "cn-b"}},
                                {"nodeSelector": {"tier": "spot"}, "podLabels": {"tier": "spot"}},
                                {"resource": "acs"}]}}
            """), at: ""))
        XCTAssertEqual(policy.placement?.units, [
            PlacementUnit(regions: ["idc-sh"], selector: RegionSelector(kind: .onPremises), max: 2),
            PlacementUnit(regions: ["cn-b"], selector: RegionSelector(labels: ["zone": "east"])),
            PlacementUnit(regions: ["*"], selector: RegionSelector(labels: ["tier": "spot"])),
            PlacementUnit(regions: ["*"], selector: RegionSelector(kind: .serverless)),
        ])
        XCTAssertEqual(policy.unitPodLabels, [[:], [:], ["tier": "spot"], [:]])
        XCTAssertEqual(policy.podSelector, ["app": "a"])
        XCTAssertEqual(policy.warnings, [])
    }

    func testUnimplementedFieldsAreNamed() throws {
        let policy = try XCTUnwrap(try ManifestPolicies.read(json("""
            {"apiVersion": "scheduling.alibabacloud.com/v1alpha1", "kind": "ResourcePolicy", "metadata": {"name": "p"},
             "spec": {"selector": {"app": "a"}, "ignorePreviousPod": false, "ignoreTerminatingPod": true,
                      "preemptPolicy": "AfterAllUnits", "whenTryNextUnits": {"policy": "TimeoutOrExceedMax", "timeout": "1m"},
                      "matchLabelKeys": ["pod-template-hash"],
                      "units": [{"resource": "ecs", "podAnnotations": {"a": "b"}, "spreadPolicy": "ignore"}]}}
            """), at: "documents[3]"))
        XCTAssertEqual(policy.warnings, [
            "ResourcePolicy p: spec.units[0].podAnnotations is not implemented: ignored",
            "ResourcePolicy p: spec.units[0].spreadPolicy is not implemented: ignored",
            "ResourcePolicy p: spec.ignorePreviousPod is not implemented: ignored",
            "ResourcePolicy p: spec.ignoreTerminatingPod is not implemented: ignored",
            "ResourcePolicy p: spec.matchLabelKeys is not implemented: ignored",
            "ResourcePolicy p: spec.preemptPolicy is not implemented: ignored",
            "ResourcePolicy p: spec.whenTryNextUnits is not implemented: ignored",
        ])
        let karmada = try XCTUnwrap(try ManifestPolicies.read(json("""
            {"apiVersion": "policy.one.alibabacloud.com/v1alpha1", "kind": "PropagationPolicy", "metadata": {"name": "demo-policy"},
             "spec": {"autoScaling": {"ecsProvision": true}, "preserveResourcesOnDeletion": false, "conflictResolution": "Overwrite",
                      "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "qwen3-8b", "namespace": "default"}],
                      "placement": {"clusterAffinity": {"clusterNames": ["cn-a"], "fieldSelector": {}}, "spreadConstraints": [],
                                    "replicaScheduling": {"replicaSchedulingType": "Divided"}}}}
            """), at: ""))
        XCTAssertEqual(karmada.warnings, [
            "PropagationPolicy demo-policy: spec.conflictResolution is not implemented: ignored",
            "PropagationPolicy demo-policy: spec.preserveResourcesOnDeletion is not implemented: ignored",
            "PropagationPolicy demo-policy: spec.placement.clusterAffinity.fieldSelector is not implemented: ignored",
            "PropagationPolicy demo-policy: spec.placement.spreadConstraints is not implemented: ignored",
        ])
        // ecsProvision: inventory-aware, i.e. divided by available replicas.
        XCTAssertEqual(karmada.placement, PlacementPolicy(strategy: .spread, units: [PlacementUnit(regions: ["cn-a"])]))
    }

    func testTheGroupIsMatchedByBytes() {
        // A skin-tone modifier after the `/` makes "/🏻" one character: still the group.
        XCTAssertTrue(ManifestPolicies.isPolicy(["kind": "ResourcePolicy", "apiVersion": "scheduling.alibabacloud.com/\u{1F3FB}0"]))
        XCTAssertFalse(ManifestPolicies.isPolicy(["kind": "ResourcePolicy", "apiVersion": "scheduling.alibabacloud.co/v1"]))
        XCTAssertFalse(ManifestPolicies.isPolicy(["kind": "Policy", "apiVersion": "scheduling.alibabacloud.com/v1alpha1"]))
    }

    func testMalformedPoliciesAreRefusedWithTheirPaths() {
        func resourcePolicy(_ spec: String) -> JSONValue {
            json(#"{"apiVersion": "scheduling.alibabacloud.com/v1alpha1", "kind": "ResourcePolicy", "metadata": {"name": "p"}, "spec": \#(spec)}"#)
        }
        let deployment = deployment("web", replicas: 1, labels: ["app": "a"])
        assertError("documents[0].spec.strategy", "must be prefer") {
            try ManifestTranslator.plan([resourcePolicy(#"{"selector": {}, "strategy": "binpack", "units": [{"resource": "eci"}]}"#), deployment])
        }
        assertError("documents[0].spec.units[0].resource", "idc, ecs, elastic, eci") {
            try ManifestTranslator.plan([resourcePolicy(#"{"selector": {}, "units": [{"resource": "gpu"}]}"#), deployment])
        }
        assertError("documents[0].spec.units[0].nodeSelector.topology.kubernetes.io/region", "region id") {
            try ManifestTranslator.plan([resourcePolicy(#"{"selector": {}, "units": [{"nodeSelector": {"topology.kubernetes.io/region": "<RegionID>"}}]}"#), deployment])
        }
        assertError("documents[0].spec.units[0].max", "at least 1") {
            try ManifestTranslator.plan([resourcePolicy(#"{"selector": {}, "units": [{"resource": "idc", "max": 0}]}"#), deployment])
        }
        assertError("documents[0].spec.units", "required") {
            try ManifestTranslator.plan([resourcePolicy(#"{"selector": {}}"#), deployment])
        }
        assertError("documents[0].metadata.name", "required") {
            try ManifestTranslator.plan([with(resourcePolicy(#"{"selector": {}, "units": [{"resource": "eci"}]}"#), "metadata", [:]), deployment])
        }
    }

    // MARK: selection

    func testTwoPoliciesSelectingOneWorkloadAreRefusedNamingBoth() {
        let other = with(Self.ctyunPolicy, "spec", json(#"{"selector": {"app": "nginx"}, "units": [{"resource": "bc"}]}"#))
        let workload = deployment("nginx", replicas: 3, labels: ["app": "nginx", "key1": "value1"])
        let errors = fieldErrors { try ManifestTranslator.plan([Self.seedResourcePolicy, other, workload]) }
        XCTAssertEqual(errors.map(\.field), ["documents[0]"])
        XCTAssertEqual(errors.first?.message,
                       "ResourcePolicy cost-balance-policy and Policy multi-vk-gpu-resourcepolicy both select Deployment/nginx: "
                       + "one policy per workload, as which one wins is undefined")
    }

    func testAWorkloadPlacedTogetherIsNotSplitByUnits() throws {
        let group = json("""
            {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "metadata": {"name": "vllm"},
             "spec": {"replicas": 1, "leaderWorkerTemplate": {"size": 2, "workerTemplate": {
               "metadata": {"labels": {"app": "nginx", "key1": "value1"}},
               "spec": {"containers": [{"name": "w", "image": "vllm", "resources": {"requests": {"cpu": 2}}}]}}}}}
            """)
        let plan = try ManifestTranslator.plan([Self.seedResourcePolicy, group])
        XCTAssertNil(plan.workloads[0].components[0].requests[0].placement)
        XCTAssertEqual(plan.policyOutcomes[0].governs, [])
        XCTAssertTrue(plan.warnings.contains(
            "ResourcePolicy cost-balance-policy selects LeaderWorkerSet/vllm, whose pods run together in one region: its units are not applied"),
            "\(plan.warnings)")
    }

    func testAWorkloadPinningItsRegionIsRefused() {
        var pinned = deployment("nginx", replicas: 1, labels: ["app": "nginx", "key1": "value1"])
        pinned = pinned.setting(["spec", "template", "spec", "nodeSelector"], to: ["topology.kubernetes.io/region": "cn-a"])
        assertError("documents[0]", "pins cn-a: remove the pin or the policy") {
            try ManifestTranslator.plan([Self.seedResourcePolicy, pinned])
        }
    }

    // MARK: PropagationPolicy

    func testStaticWeightsDivideInTheirRatio() throws {
        let plan = try ManifestTranslator.plan([deployment("web", replicas: 3, labels: ["app": "web"]), propagation(Self.staticWeights)])
        XCTAssertEqual(plan.workloads[0].requests[0].placement, PlacementPolicy(strategy: .spread, units: [
            PlacementUnit(regions: ["cn-a"], weight: 1), PlacementUnit(regions: ["cn-b"], weight: 2),
        ]))
        XCTAssertEqual(plan.policyOutcomes[0].governs, ["Deployment/web"])
        let roomy = inventory([("cn-a", .serverless, 20), ("cn-b", .serverless, 10)])
        XCTAssertEqual(place(plan, roomy).byRegion, ["cn-a": 1, "cn-b": 2])
        XCTAssertEqual(place(plan, roomy, replicas: 9).byRegion, ["cn-a": 3, "cn-b": 6], "not what each can hold: the weights")
        XCTAssertTrue(place(plan, roomy).decision("cn-b")!.reason.contains("spread share 2 of 3 by weight 2"))
        // A region short of its share: the rest goes where there is room.
        XCTAssertEqual(place(plan, inventory([("cn-a", .serverless, 20), ("cn-b", .serverless, 1)])).byRegion, ["cn-a": 2, "cn-b": 1])
    }

    func testDynamicWeightFollowsAvailableReplicas() throws {
        let dynamic = """
            {"clusterAffinity": {"clusterNames": ["cn-a", "cn-b"]},
             "replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
               "weightPreference": {"dynamicWeight": "AvailableReplicas"}}}
            """
        let plan = try ManifestTranslator.plan([deployment("web", replicas: 4, labels: [:]), propagation(dynamic)])
        XCTAssertEqual(plan.workloads[0].requests[0].placement,
                       PlacementPolicy(strategy: .spread, units: [PlacementUnit(regions: ["cn-a", "cn-b"])]))
        XCTAssertEqual(place(plan, inventory([("cn-a", .serverless, 6), ("cn-b", .serverless, 2)])).byRegion, ["cn-a": 3, "cn-b": 1])
        XCTAssertEqual(place(plan, inventory([("cn-a", .serverless, 2), ("cn-b", .serverless, 6)])).byRegion, ["cn-a": 1, "cn-b": 3])
    }

    func testDivisionPreferencesAndAffinity() throws {
        func placement(_ text: String) throws -> PlacementPolicy? {
            try ManifestPolicies.read(propagation(text), at: "")?.placement
        }
        XCTAssertEqual(try placement("""
            {"clusterAffinity": {"clusterNames": ["cn-a", "cn-b", "cn-c"], "exclude": ["cn-b"]},
             "replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Aggregated"}}
            """), PlacementPolicy(strategy: .prefer, units: [PlacementUnit(regions: ["cn-a", "cn-c"])]))
        XCTAssertEqual(try placement("""
            {"clusterAffinity": {"labelSelector": {"matchLabels": {"tier": "gpu"}}}, "replicaScheduling": {"replicaSchedulingType": "Divided"}}
            """), PlacementPolicy(strategy: .spread, units: [
                PlacementUnit(regions: ["*"], selector: RegionSelector(labels: ["tier": "gpu"]), weight: 1)]))
        XCTAssertEqual(try placement(#"{"clusterAffinity": {"clusterNames": ["cn-a"]}}"#),
                       PlacementPolicy(strategy: .prefer, units: [PlacementUnit(regions: ["cn-a"])]), "Duplicated on one region")
        assertError("spec.placement.replicaScheduling.replicaDivisionPreference", "Aggregated or Weighted") {
            try placement(#"{"replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Even"}}"#)
        }
        assertError("spec.placement.clusterAffinity.clusterNames[0]", "region id") {
            try placement(#"{"clusterAffinity": {"clusterNames": ["${cluster1-id}"]}}"#)
        }
    }

    func testDuplicatedIsRefusedOnlyWhenItGovernsAWorkload() throws {
        let duplicated = propagation(#"{"clusterAffinity": {"clusterNames": ["cn-a", "cn-b"]}}"#)
        assertError("documents[1].spec.placement.replicaScheduling.replicaSchedulingType", "Duplicated") {
            try ManifestTranslator.plan([deployment("web", replicas: 2, labels: [:]), duplicated])
        }
        let plan = try ManifestTranslator.plan([deployment("other", replicas: 2, labels: [:]), duplicated])
        XCTAssertEqual(plan.warnings, ["PropagationPolicy web-policy selects none of the file's workloads: passed through unchanged"])
    }

    func testResourceSelectorsMatchKindNameNamespaceAndLabels() throws {
        func governs(_ selectors: String, _ workload: JSONValue) throws -> [String] {
            try ManifestTranslator.plan([workload, propagation(Self.staticWeights, selectors: selectors)]).policyOutcomes[0].governs
        }
        let web = deployment("web", replicas: 1, labels: [:], objectLabels: ["team": "a"])
        XCTAssertEqual(try governs(#"[{"apiVersion": "apps/v1", "kind": "Deployment", "labelSelector": {"matchLabels": {"team": "a"}}}]"#, web), ["Deployment/web"])
        XCTAssertEqual(try governs(#"[{"apiVersion": "apps/v1", "kind": "Deployment", "labelSelector": {"matchLabels": {"team": "b"}}}]"#, web), [])
        XCTAssertEqual(try governs(#"[{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web"}]"#, web), [])
        XCTAssertEqual(try governs(#"[{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "prod"}]"#, web), [])
        XCTAssertEqual(try governs(#"[{"apiVersion": "apps/v1", "kind": "Deployment", "name": "db"}, {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "default"}]"#, web), ["Deployment/web"])
    }

    // MARK: ctyun Policy

    func testCtyunUnitsPinReplicaCountsToRegionsAndCarryPodLabels() throws {
        let workload = deployment("nginx-gpu", replicas: 3, labels: ["esx": "nginx-gpu-resourcepolicy"])
        let plan = try ManifestTranslator.plan([Self.ctyunPolicy, workload])
        let translation = plan.workloads[0]
        XCTAssertEqual(translation.requests[0].placement?.units, [
            PlacementUnit(regions: ["cn-a"], selector: RegionSelector(kind: .serverless), max: 1),
            PlacementUnit(regions: ["cn-b"], selector: RegionSelector(kind: .serverless), max: 2),
        ])
        XCTAssertEqual(plan.warnings, [
            "Policy multi-vk-gpu-resourcepolicy: spec.units[0].schedulerNodeSelector.spec is ignored: only a region key selects regions in a bc unit",
            "Policy multi-vk-gpu-resourcepolicy: spec.units[1].nodeSelector.spec is ignored: only a region key selects regions in a bc unit",
        ])
        let placed = place(plan, inventory([("cn-b", .serverless, 10), ("cn-a", .serverless, 10)]))
        XCTAssertEqual(placed.placements.map(\.region), ["cn-a", "cn-b"])
        XCTAssertEqual(placed.placements.map(\.count), [1, 2])
        // Each copy carries its unit's pod labels; the region label is the one granted.
        let grants = ManifestPolicies.labelling(
            [RegionGrant(region: "cn-a", replicas: 1), RegionGrant(region: "cn-b", replicas: 2)], translation,
            unitOf: ["cn-a": 0, "cn-b": 1])
        let copies = ManifestTranslator.output(plan, grants: [grants])
        XCTAssertEqual(copies.map(\.region), [nil, "cn-a", "cn-b"])
        let labels = copies.dropFirst().map { $0.manifest.value(at: ["spec", "template", "metadata", "labels"]) }
        XCTAssertEqual(labels[0], [
            "esx": "nginx-gpu-resourcepolicy", "ctyun.cn/specified-region-id": "cn-a", "ctyun.cn/compute-class": "gpu",
            "topology.kubernetes.io/region": "cn-a",
        ])
        XCTAssertEqual(labels[1], [
            "esx": "nginx-gpu-resourcepolicy", "ctyun.cn/specified-region-id": "cn-b", "ctyun.cn/compute-qos": "default",
            "topology.kubernetes.io/region": "cn-b",
        ])
        // A unit's region label names the region granted, whatever the policy wrote.
        let moved = ManifestPolicies.labelling([RegionGrant(region: "cn-c", replicas: 1)], translation, unitOf: ["cn-c": 0])
        XCTAssertEqual(moved[0].podLabels["ctyun.cn/specified-region-id"], "cn-c")
        XCTAssertEqual(copies.dropFirst().map { $0.manifest.value(at: ["spec", "replicas"]) }, [1, 2])
    }

    // MARK: stored as named policies

    func testNamedFromEachKind() throws {
        let (resource, warnings) = try ManifestPolicies.named(Self.seedResourcePolicy, name: "cost-balance-policy")
        XCTAssertEqual(resource.selector, ["app": "nginx", "key1": "value1"])
        XCTAssertEqual(resource.policy.units.map(\.max), [3, nil])
        XCTAssertEqual(warnings.count, 1)
        let (ctyun, ctyunWarnings) = try ManifestPolicies.named(Self.ctyunPolicy, name: "multi-vk-gpu-resourcepolicy")
        XCTAssertEqual(ctyun.selector, ["esx": "nginx-gpu-resourcepolicy"])
        XCTAssertTrue(ctyunWarnings.last!.contains("podLabels are injected into manifests"), "\(ctyunWarnings)")
        let byLabels = propagation(
            Self.staticWeights, selectors: #"[{"apiVersion": "apps/v1", "kind": "Deployment", "labelSelector": {"matchLabels": {"app": "web"}}}]"#)
        let (karmada, _) = try ManifestPolicies.named(byLabels, name: "web-policy")
        XCTAssertEqual(karmada.selector, ["app": "web"])
        XCTAssertEqual(karmada.policy.units.map(\.weight), [1, 2])
        assertError("spec.resourceSelectors[0]", "a stored policy selects requests by their labels") {
            try ManifestPolicies.named(propagation(Self.staticWeights), name: "web-policy")
        }
        let (renamed, renamedWarnings) = try ManifestPolicies.named(Self.seedResourcePolicy, name: "other")
        XCTAssertEqual(renamed.name, "other")
        XCTAssertEqual(renamedWarnings.last, "ResourcePolicy cost-balance-policy: stored as other, the name in the path")
        let twoSelectors = propagation(Self.staticWeights, selectors: """
            [{"apiVersion": "apps/v1", "kind": "Deployment", "labelSelector": {"matchLabels": {"app": "web"}}},
             {"apiVersion": "apps/v1", "kind": "StatefulSet", "labelSelector": {"matchLabels": {"app": "web"}}}]
            """)
        assertError("spec.resourceSelectors", "one item") { try ManifestPolicies.named(twoSelectors, name: "web-policy") }
        assertError("spec.placement.replicaScheduling.replicaSchedulingType", "Duplicated") {
            try ManifestPolicies.named(propagation(#"{"clusterAffinity": {"clusterNames": ["cn-a", "cn-b"]}}"#,
                selectors: #"[{"apiVersion": "apps/v1", "kind": "Deployment", "labelSelector": {"matchLabels": {"app": "web"}}}]"#),
                name: "web-policy")
        }
    }

    func testWeightsNeedSpreadOnEveryUnit() {
        assertError("units", "weight") {
            try PlacementSpec.parse(["strategy": "prefer", "units": [["regions": ["a"], "weight": 1]]])
        }
        assertError("units", "weight") {
            try PlacementSpec.parse(["strategy": "spread", "units": [["regions": ["a"], "weight": 1], ["regions": ["b"]]]])
        }
        assertError("units[0].weight", "at least 1") { try PlacementSpec.parse(["strategy": "spread", "units": [["regions": ["a"], "weight": 0]]]) }
        XCTAssertNoThrow(try PlacementSpec.parse(["strategy": "spread", "units": [["regions": ["a"], "weight": 1], ["regions": ["b"], "weight": 3]]]))
    }
}
