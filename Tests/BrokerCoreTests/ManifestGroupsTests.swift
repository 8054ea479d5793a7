import JSON
import BrokerCore
import JSON
import XCTest

/// Kinds whose pod templates are placed together: where each finds its templates and how
/// many pods each stands for, and the one copy the answer holds. Plain values.
final class ManifestGroupsTests: XCTestCase {
    func template(gpus: Int = 0, labels: JSONValue = [:]) -> JSONValue {
        ["metadata": ["labels": labels],
         "spec": ["containers": [["name": "c", "image": "x", "resources": ["limits": ["nvidia.com/gpu": .number(Double(gpus))]]]]]]
    }

    func components(_ document: JSONValue) throws -> [(String, Int, Int)] {
        let t = try ManifestTranslator.plan([document]).workloads[0]
        XCTAssertTrue(t.together)
        return t.components.map { ($0.site.name, $0.requests[0].replicas, $0.requests[0].shape.gpuCount) }
    }

    func testEveryGroupKindFindsItsTemplatesAndCounts() throws {
        let lws: JSONValue = ["apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "metadata": ["name": "l"],
            "spec": ["replicas": 3, "leaderWorkerTemplate": ["size": 4, "leaderTemplate": template(), "workerTemplate": template(gpus: 8)]]]
        XCTAssertEqual(try components(lws).map(\.0), ["leader", "worker"])
        XCTAssertEqual(try components(lws).map(\.1), [3, 9])
        XCTAssertEqual(try components(lws).map(\.2), [0, 8])
        let workersOnly = lws.removing(["spec", "leaderWorkerTemplate", "leaderTemplate"])
        XCTAssertEqual(try components(workersOnly).map(\.1), [12])

        let rayCluster: JSONValue = ["headGroupSpec": ["template": template()], "workerGroupSpecs": [
            ["groupName": "gpu", "replicas": 2, "numOfHosts": 2, "template": template(gpus: 1)],
            ["groupName": "cpu", "minReplicas": 3, "template": template()],
            ["groupName": "none", "replicas": 0, "template": template()],
        ]]
        let ray: JSONValue = ["apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": ["name": "r"], "spec": ["rayClusterSpec": rayCluster]]
        XCTAssertEqual(try components(ray).map(\.0), ["head", "gpu", "cpu"])
        XCTAssertEqual(try components(ray).map(\.1), [1, 4, 3])
        let service: JSONValue = ["apiVersion": "ray.io/v1", "kind": "RayService", "metadata": ["name": "r"], "spec": ["rayClusterConfig": rayCluster]]
        XCTAssertEqual(try components(service).map(\.1), [1, 4, 3])

        let pytorch: JSONValue = ["apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": ["name": "p"],
            "spec": ["pytorchReplicaSpecs": ["Master": ["replicas": 1, "template": template(gpus: 1)], "Worker": ["replicas": 3, "template": template(gpus: 1)]]]]
        XCTAssertEqual(try components(pytorch).map(\.0), ["Master", "Worker"])
        XCTAssertEqual(try components(pytorch).map(\.1), [1, 3])

        let rbg: JSONValue = ["apiVersion": "workloads.x-k8s.io/v1alpha1", "kind": "RoleBasedGroup", "metadata": ["name": "g"],
            "spec": ["roles": [["name": "router", "template": template()],
                               ["name": "decode", "replicas": 2, "leaderWorkerSet": ["size": 2], "template": template(gpus: 8)]]]]
        XCTAssertEqual(try components(rbg).map(\.0), ["router", "decode"])
        XCTAssertEqual(try components(rbg).map(\.1), [1, 4])

        let isvc: JSONValue = ["apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": ["name": "i"],
            "spec": ["predictor": ["minReplicas": 2, "tensorflow": ["storageUri": "gs://m", "resources": ["limits": ["nvidia.com/gpu": 1]]]]]]
        XCTAssertEqual(try components(isvc).map(\.0), ["predictor"])
        XCTAssertEqual(try components(isvc).map(\.1), [2])
        XCTAssertEqual(try components(isvc).map(\.2), [1])

        let knative: JSONValue = ["apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": ["name": "k"],
            "spec": ["template": ["metadata": ["annotations": ["autoscaling.knative.dev/min-scale": "3"]], "spec": ["containers": [["image": "x"]]]]]]
        XCTAssertEqual(try components(knative).map(\.1), [3])
        let jobSet: JSONValue = ["apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "metadata": ["name": "j"],
            "spec": ["replicatedJobs": [["name": "workers", "replicas": 2, "template": ["spec": ["parallelism": 4, "completions": 3, "template": template(gpus: 1)]]]]]]
        XCTAssertEqual(try components(jobSet).map(\.0), ["workers"])
        XCTAssertEqual(try components(jobSet).map(\.1), [6])
        let coreService: JSONValue = ["apiVersion": "v1", "kind": "Service", "metadata": ["name": "s"]]
        assertError("kind", "holds no workload") { try ManifestTranslator.plan([coreService]) }
    }

    func testGroupErrors() throws {
        let base: JSONValue = ["apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "metadata": ["name": "l"]]
        assertError("spec.leaderWorkerTemplate.workerTemplate.spec", "is required: the pod spec") {
            try ManifestTranslator.plan([base.setting(["spec"], to: ["replicas": 1])])
        }
        // No pods now: nothing to place, said in a warning.
        let idle = try ManifestTranslator.plan([base.setting(["spec"], to: ["replicas": 0, "leaderWorkerTemplate": ["workerTemplate": template()]])])
        XCTAssertTrue(idle.workloads[0].isEmpty)
        XCTAssertEqual(idle.warnings, ["LeaderWorkerSet l has no pods to run (replicas 0): nothing reserved, its copy returned once"])
        let pinned = base.setting(["spec", "leaderWorkerTemplate"], to: [
            "leaderTemplate": template(labels: ["topology.kubernetes.io/region": "a"]),
            "workerTemplate": template(labels: ["topology.kubernetes.io/region": "b"]), "size": 2,
        ])
        assertError("", "pin different regions (a, b)") { try ManifestTranslator.plan([pinned]) }
        let huge = base.setting(["spec"], to: ["replicas": 1000, "leaderWorkerTemplate": ["size": 100, "workerTemplate": template()]])
        assertError("spec", "asks for 100000 pods") { try ManifestTranslator.plan([huge]) }
    }

    func testTheGroupIsOneCopyWithEveryTemplateGranted() throws {
        let lws: JSONValue = ["apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "metadata": ["name": "l", "uid": "u"],
            "spec": ["replicas": 2, "leaderWorkerTemplate": ["size": 2, "leaderTemplate": template(), "workerTemplate": template(gpus: 8)]]]
        let plan = try ManifestTranslator.plan([lws])
        XCTAssertEqual(ManifestTranslator.allowedRegions(plan.workloads[0], among: ["a", "b"]), ["a", "b"])
        let out = ManifestTranslator.output(plan, grants: [[
            RegionGrant(region: "b", replicas: 2, instanceTypes: ["cpu.large"]),
            RegionGrant(region: "b", replicas: 2, instanceTypes: ["gpu.8x"], gpuSeries: ["H100"]),
        ]])
        XCTAssertEqual(out.count, 1)
        XCTAssertEqual(out[0].region, "b")
        let m = out[0].manifest
        XCTAssertEqual(m.value(at: ["metadata"]), ["name": "l-b"])
        XCTAssertEqual(m.value(at: ["spec", "replicas"]), 2, "all in one region: the counts stay")
        for t in ["leaderTemplate", "workerTemplate"] {
            XCTAssertEqual(m.value(at: ["spec", "leaderWorkerTemplate", t, "metadata", "labels", "topology.kubernetes.io/region"]), "b")
            XCTAssertEqual(m.value(at: ["spec", "leaderWorkerTemplate", t, "spec", "nodeSelector", "topology.kubernetes.io/region"]), "b")
        }
        XCTAssertNil(m.value(at: ["spec", "leaderWorkerTemplate", "leaderTemplate", "metadata", "labels", "alibabacloud.com/gpu-model-series"]))
        XCTAssertEqual(m.value(at: ["spec", "leaderWorkerTemplate", "workerTemplate", "metadata", "labels", "alibabacloud.com/gpu-model-series"]), "H100")
    }
}
