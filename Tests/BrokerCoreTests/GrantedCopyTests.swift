import BrokerCore
import JSON
import XCTest

/// The copy says what was granted. Choice for a workload spread over several pools of one
/// region: one copy per region, whose instance-type list (`eci-use-specs`) covers exactly
/// the granted types; selectors of a model or type the grant contradicts are removed.
final class GrantedCopyTests: XCTestCase {
    func deployment(nodeSelector: JSONValue, affinity: JSONValue? = nil, annotations: JSONValue = [:]) throws -> ManifestTranslation {
        var spec: [String: JSONValue] = [
            "containers": [["name": "c", "image": "x", "resources": ["limits": ["nvidia.com/gpu": 1]]]], "nodeSelector": nodeSelector,
        ]
        if let affinity { spec["affinity"] = affinity }
        let document: JSONValue = ["apiVersion": "apps/v1", "kind": "Deployment", "metadata": ["name": "d"],
            "spec": ["replicas": 3, "selector": ["matchLabels": ["app": "d"]],
                     "template": ["metadata": ["labels": ["app": "d"], "annotations": annotations], "spec": .object(spec)]]]
        return try ManifestTranslator.plan([document]).workloads[0]
    }

    func testSeveralPoolsInARegionAreOneCopyListingExactlyTheGrantedTypes() throws {
        let t = try deployment(
            nodeSelector: ["nvidia.com/gpu.product": "NVIDIA-A10", "node.kubernetes.io/instance-type": "ecs.gn7i-c8g1.2xlarge"],
            annotations: ["k8s.aliyun.com/eci-use-specs": "ecs.gn7i-c8g1.2xlarge"])
        let grants = ManifestTranslator.grants(instances: [
            ("cn-beijing", "ecs.gn7i-c8g1.2xlarge", "A10"), ("cn-beijing", "ecs.gn6i-c4g1.xlarge", "T4"),
            ("cn-beijing", "ecs.gn7i-c8g1.2xlarge", "A10"),
        ])
        let copies = ManifestTranslator.regionManifests(t, grants: grants)
        XCTAssertEqual(copies.count, 1)
        let template = copies[0].value(at: ["spec", "template"])
        XCTAssertEqual(template?.value(at: ["metadata", "annotations", "k8s.aliyun.com/eci-use-specs"]),
                       "ecs.gn7i-c8g1.2xlarge,ecs.gn6i-c4g1.xlarge", "the granted types, most used first")
        XCTAssertNil(template?.value(at: ["metadata", "labels", "alibabacloud.com/gpu-model-series"]), "two models: no one series")
        XCTAssertEqual(template?.value(at: ["spec", "nodeSelector"]), ["topology.kubernetes.io/region": "cn-beijing"],
                       "a model and a type the T4 replica contradicts are gone")
    }

    func testOnePoolReplacesContradictingSelectorsWithTheGrant() throws {
        let affinity: JSONValue = ["nodeAffinity": ["requiredDuringSchedulingIgnoredDuringExecution": ["nodeSelectorTerms": [
            ["matchExpressions": [["key": "karpenter.k8s.aws/instance-gpu-name", "operator": "In", "values": ["a100", "h100"]]]],
        ]]]]
        let t = try deployment(
            nodeSelector: ["cloud.google.com/gke-accelerator": "nvidia-l4", "node.kubernetes.io/instance-type": "g6.xlarge",
                           "nvidia.com/gpu.family": "ampere", "kubernetes.io/arch": "amd64"],
            affinity: affinity)
        let copy = ManifestTranslator.regionManifests(
            t, grants: [RegionGrant(region: "us-east-1", replicas: 3, instanceTypes: ["p4d.24xlarge"], gpuSeries: ["A100"])])[0]
        let spec = copy.value(at: ["spec", "template", "spec"])
        XCTAssertEqual(spec?["nodeSelector"], [
            "topology.kubernetes.io/region": "us-east-1", "node.kubernetes.io/instance-type": "p4d.24xlarge",
            "nvidia.com/gpu.family": "ampere", "kubernetes.io/arch": "amd64",
        ], "L4 is gone, the type is the granted one, Ampere holds for an A100, other labels stay")
        XCTAssertEqual(
            spec?.value(at: ["affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms", "0", "matchExpressions"]),
            [["key": "karpenter.k8s.aws/instance-gpu-name", "operator": "In", "values": ["a100", "h100"]]], "a100 agrees: kept")
        let h100 = ManifestTranslator.regionManifests(
            t, grants: [RegionGrant(region: "us-east-1", replicas: 3, instanceTypes: ["p5.48xlarge"], gpuSeries: ["L4"])])[0]
        XCTAssertEqual(
            h100.value(at: ["spec", "template", "spec", "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution",
                            "nodeSelectorTerms", "0", "matchExpressions", "0"]),
            ["key": "karpenter.k8s.aws/instance-gpu-name", "operator": "Exists"], "contradicted: the term keeps a condition that holds")
    }
}
