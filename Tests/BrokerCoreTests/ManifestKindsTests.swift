import JSON
@testable import BrokerCore
import JSON
import XCTest

/// Kinds, streams, GPU spellings, region pins and the per-region output, with plain values.
final class ManifestKindsTests: XCTestCase {
    func container(_ resources: JSONValue) -> JSONValue { ["name": "c", "image": "x", "resources": resources] }

    func podSpec(_ resources: JSONValue = [:], nodeSelector: JSONValue? = nil, affinity: JSONValue? = nil) -> JSONValue {
        var spec: [String: JSONValue] = ["containers": [container(resources)]]
        if let nodeSelector { spec["nodeSelector"] = nodeSelector }
        if let affinity { spec["affinity"] = affinity }
        return .object(spec)
    }

    func pod(_ spec: JSONValue, labels: JSONValue = [:], annotations: JSONValue = [:]) -> JSONValue {
        ["apiVersion": "v1", "kind": "Pod", "metadata": ["name": "p", "labels": labels, "annotations": annotations], "spec": spec]
    }

    func translate(_ manifest: JSONValue, catalog: InstanceCatalog = .empty) throws -> ManifestTranslation {
        try ManifestTranslator.plan([manifest], catalog: catalog).workloads[0]
    }

    func gpuPool(_ type: String, series: String, gpus: Int = 1, memory: Double = 16, region: String = "r") -> Pool {
        Pool(id: type, regionId: region, computeClass: .gpu, qos: [.default], gpuSeries: series, gpuMemoryGiB: memory,
             gpusPerInstance: gpus, cpu: 8, memoryGiB: 32, instanceType: type, capacity: 1, pricePerHour: 1)
    }

    // MARK: kinds

    func testEverySingleTemplateKindReadsItsTemplateAndReplicas() throws {
        let template: JSONValue = ["metadata": ["labels": ["app": "a"]], "spec": podSpec(["limits": ["nvidia.com/gpu": 2]])]
        let cases: [(JSONValue, String, Int)] = [
            (["apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": ["name": "x"], "spec": ["replicas": 3, "template": template]], "ReplicaSet", 3),
            (["apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": ["name": "x"], "spec": ["replicas": 2, "template": template]], "StatefulSet", 2),
            (["apiVersion": "batch/v1", "kind": "Job", "metadata": ["name": "x"], "spec": ["parallelism": 4, "completions": 3, "template": template]], "Job", 3),
            (["apiVersion": "batch/v1", "kind": "Job", "metadata": ["generateName": "x-"], "spec": ["template": template]], "Job", 1),
            (["apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": ["name": "x"],
              "spec": ["schedule": "* * * * *", "jobTemplate": ["spec": ["parallelism": 2, "template": template]]]], "CronJob", 2),
        ]
        for (manifest, kind, replicas) in cases {
            let t = try translate(manifest)
            XCTAssertEqual(t.kind.kind, kind)
            XCTAssertEqual(t.requests[0].replicas, replicas, kind)
            XCTAssertEqual(t.requests[0].shape.gpuCount, 2, kind)
            XCTAssertEqual(t.requests[0].labels, ["app": "a"], kind)
        }
    }

    func testRefusedKindsSayWhy() {
        for (kind, apiVersion, message) in [
            ("Job", "batch/v2", "must have apiVersion batch/v1"),
            ("Widget", "example.com/v1", "Widget of API group example.com runs pods, but the broker does not know"),
        ] {
            assertError("kind", message) {
                try translate(["apiVersion": .string(apiVersion), "kind": .string(kind), "metadata": ["name": "x"],
                               "spec": ["template": ["spec": self.podSpec()]]])
            }
        }
    }

    // MARK: streams

    func testStreamPlacesEveryWorkloadAndReturnsTheOthersPerRegionOrOnce() throws {
        let deployment = SeedManifests.gpuSpecifiedRegion
        let service: JSONValue = ["apiVersion": "v1", "kind": "Service", "metadata": ["name": "s", "uid": "u"], "spec": ["ports": [["port": 80]]]]
        let namespace: JSONValue = ["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": "n"]]
        let list: JSONValue = ["apiVersion": "v1", "kind": "List", "items": [pod(podSpec()), namespace]]
        let plan = try ManifestTranslator.plan([service, deployment, list])
        XCTAssertEqual(plan.workloads.map(\.kind.kind), ["Deployment", "Pod"])
        let out = ManifestTranslator.output(plan, grants: [
            [RegionGrant(region: "a", replicas: 1), RegionGrant(region: "b", replicas: 1)], [RegionGrant(region: "b", replicas: 1)],
        ])
        XCTAssertEqual(out.map(\.region), [nil, "a", "a", "b", "b", "b"])
        XCTAssertEqual(out.map { $0.manifest["kind"]?.stringValue }, ["Namespace", "Deployment", "Service", "Deployment", "Pod", "Service"])
        XCTAssertEqual(out[2].manifest, service.removing(["metadata", "uid"]), "unchanged but for server-set fields")
    }

    func testStreamErrorsNameTheDocumentAndAStreamNeedsAWorkload() {
        let service: JSONValue = ["apiVersion": "v1", "kind": "Service", "metadata": ["name": "s"]]
        XCTAssertEqual(
            failingFields { try ManifestTranslator.plan([service, ["apiVersion": "apps/v1", "kind": "DaemonSet"], pod(.object([:]))]) },
            ["documents[1].kind", "documents[2].spec.containers"])
        assertError("documents", "holds no workload") { try ManifestTranslator.plan([service, service]) }
    }

    // MARK: GPU spellings

    func testGPURequestsInEverySpelling() throws {
        let catalog = InstanceCatalog(pools: [
            gpuPool("ecs.gn6i-c8g1.2xlarge", series: "T4"), gpuPool("ecs.gn7i-c32g1.16xlarge", series: "A10", gpus: 2),
            gpuPool("mi", series: "MI300X"),
        ])
        // ECI GPU instance types alone: class, series and GPUs from the pools that offer them.
        let eci = try translate(pod(podSpec(["requests": ["cpu": 8]]),
            annotations: ["k8s.aliyun.com/eci-use-specs": "ecs.gn6i-c8g1.2xlarge,ecs.gn7i-c32g1.16xlarge,unknown.type"]), catalog: catalog)
        XCTAssertEqual(eci.requests.map(\.shape.computeClass), [.gpu, .gpu, .generalPurpose])
        XCTAssertEqual(eci.requests.map(\.shape.gpuSeries), [["T4"], ["A10"], []])
        XCTAssertEqual(eci.requests.map(\.shape.gpuCount), [1, 2, 0])
        // A GPU share: one GPU with at least that memory.
        let share = try translate(pod(podSpec(["limits": ["aliyun.com/gpu-mem": 8]])))
        XCTAssertEqual(share.requests[0].shape.computeClass, .gpu)
        XCTAssertEqual(share.requests[0].shape.gpuCount, 1)
        XCTAssertEqual(share.requests[0].shape.minGPUMemoryGiB, 8)
        XCTAssertEqual(share.requests[0].shape.gpuVendor, .nvidia)
        let hami = try translate(pod(podSpec(["limits": ["nvidia.com/gpu": 2, "nvidia.com/gpumem": 3000, "nvidia.com/gpucores": 30]])))
        XCTAssertEqual(hami.requests[0].shape.gpuCount, 2)
        XCTAssertEqual(hami.requests[0].shape.minGPUMemoryGiB!, 3000.0 / 1024, accuracy: 1e-9)
        // AMD: only AMD devices, and refused where no pool has them.
        XCTAssertEqual(try translate(pod(podSpec(["limits": ["amd.com/gpu": 1]])), catalog: catalog).requests[0].shape.gpuVendor, .amd)
        let nvidiaOnly = InstanceCatalog(pools: [gpuPool("t4", series: "T4")])
        assertError("spec.containers.resources", "no pool offers AMD GPUs") {
            try self.translate(self.pod(self.podSpec(["limits": ["amd.com/gpu": 1]])), catalog: nvidiaOnly)
        }
        assertError("spec.containers.resources", "no pool offers TPUs") {
            try self.translate(self.pod(self.podSpec(["limits": ["google.com/tpu": 4]])), catalog: nvidiaOnly)
        }
        // GKE's accelerator selector: that series first, then any.
        let gke = try translate(pod(podSpec(["limits": ["nvidia.com/gpu": 1]], nodeSelector: ["cloud.google.com/gke-accelerator": "nvidia-tesla-t4"])), catalog: catalog)
        XCTAssertEqual(gke.requests.map(\.shape.gpuSeries), [["T4"], []])
        // ACS's gpu-hpn class is the GPU class.
        XCTAssertEqual(try translate(pod(podSpec(), labels: ["alibabacloud.com/compute-class": "gpu-hpn"])).requests[0].shape.computeClass, .gpu)
    }

    func testMoreThanFiveInstanceTypesAreRefused() throws {
        let five = (1...5).map { "t\($0)" }.joined(separator: ",")
        XCTAssertEqual(try translate(pod(podSpec(), annotations: ["k8s.aliyun.com/eci-use-specs": .string(five)])).requests.count, 5)
        assertError("metadata.annotations.k8s.aliyun.com/eci-use-specs", "lists 6 instance types; at most 5") {
            try self.translate(self.pod(self.podSpec(), annotations: ["k8s.aliyun.com/eci-use-specs": .string(five + ",t6")]))
        }
    }

    // MARK: region pins

    func testRegionPinsFromSelectorsAndAffinity() throws {
        XCTAssertEqual(try translate(pod(podSpec(nodeSelector: ["alibabacloud.com/serverless-region-id": "cn-beijing"]))).requests[0].region, "cn-beijing")
        let affinity: JSONValue = ["nodeAffinity": ["requiredDuringSchedulingIgnoredDuringExecution": ["nodeSelectorTerms": [
            ["matchExpressions": [["key": "topology.kubernetes.io/region", "operator": "In", "values": ["cn-a", "cn-b"]]]],
        ]]]]
        let two = try translate(pod(podSpec(affinity: affinity)))
        XCTAssertNil(two.requests[0].region)
        XCTAssertEqual(two.requests[0].placement?.units.first?.regions, ["cn-a", "cn-b"])
        XCTAssertEqual(try translate(pod(podSpec(affinity: affinity), labels: ["topology.kubernetes.io/region": "cn-b"])).requests[0].region, "cn-b")
        assertError("spec.nodeSelector", "pins cn-a but the pod's labels pin cn-c") {
            try self.translate(self.pod(self.podSpec(nodeSelector: ["ctyun.cn/specified-region-id": "cn-a"]),
                                        labels: ["topology.kubernetes.io/region": "cn-c"]))
        }
        assertError("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms", "allows cn-a, cn-b but nodeSelector pins cn-c") {
            try self.translate(self.pod(self.podSpec(nodeSelector: ["topology.kubernetes.io/region": "cn-c"], affinity: affinity)))
        }
    }

    // MARK: output

    func testOutputIsWhatAnAPIServerAccepts() throws {
        var d = SeedManifests.gpuSpecifiedRegion.setting(["metadata", "name"], to: .string(String(repeating: "n", count: 253)))
        for field in ["uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"] {
            d = d.setting(["metadata", field], to: "x")
        }
        d = d.setting(["metadata", "annotations", "deployment.kubernetes.io/revision"], to: "3")
            .setting(["status"], to: ["replicas": 1]).setting(["spec", "template", "metadata", "creationTimestamp"], to: .null)
            .setting(["spec", "template", "spec", "nodeSelector", "cloud.google.com/gke-accelerator"], to: "nvidia-l4")
        let out = ManifestTranslator.regionManifests(
            try translate(d), grants: [RegionGrant(region: "cn-beijing", replicas: 1, instanceTypes: ["ecs.a", "ecs.b"], gpuSeries: ["T4"])])[0]
        XCTAssertEqual(out["metadata"]?.objectValue.map { Set($0.keys) }, ["name", "labels", "namespace"])
        XCTAssertNil(out["status"])
        XCTAssertNil(out.value(at: ["spec", "template", "metadata", "creationTimestamp"]))
        let name = out["metadata"]!["name"]!.stringValue!
        XCTAssertEqual(name.count, 253)
        XCTAssertTrue(name.hasSuffix("n-cn-beijing"))
        XCTAssertEqual(out.value(at: ["spec", "template", "metadata", "labels", "alibabacloud.com/gpu-model-series"]), "T4")
        XCTAssertEqual(out.value(at: ["spec", "template", "metadata", "annotations", "k8s.aliyun.com/eci-use-specs"]), "ecs.a,ecs.b")
        XCTAssertNil(out.value(at: ["spec", "template", "spec", "nodeSelector", "cloud.google.com/gke-accelerator"]), "L4 contradicts T4")
        let job: JSONValue = ["apiVersion": "batch/v1", "kind": "Job", "metadata": ["generateName": "train-"],
                              "spec": ["parallelism": 3, "completions": 7, "template": ["spec": podSpec()]]]
        let jobs = ManifestTranslator.regionManifests(try translate(job), grants: [RegionGrant(region: "a", replicas: 2), RegionGrant(region: "b", replicas: 1)])
        XCTAssertEqual(jobs.map { $0.value(at: ["metadata", "generateName"]) }, ["train-a-", "train-b-"])
        XCTAssertEqual(jobs.map { $0.value(at: ["spec", "parallelism"]) }, [2, 1])
        XCTAssertEqual(jobs.map { $0.value(at: ["spec", "completions"]) }, [4, 3])
        XCTAssertNil(jobs[0].value(at: ["spec", "selector"]), "a Job's selector is the API server's")
    }
}

/// Issue 31, D8: spaces, `_` and a leading `-` passed into generated manifest names.
final class GeneratedNameTests: XCTestCase {
    func testGeneratedNamesAreDNSLabelsWhateverTheInput() {
        XCTAssertEqual(ManifestTranslator.regionName("-My_App v2", region: "r1"), "my-app-v2-r1")
        XCTAssertEqual(ManifestTranslator.regionPrefix("__Ünï code_", region: "r1"), "n--code-r1-")
        XCTAssertEqual(ManifestTranslator.regionPrefix("web-", region: "r1"), "web-r1-")
        XCTAssertEqual(ManifestTranslator.regionName("api.v1", region: "r1"), "api.v1-r1")
    }
}
