import JSON
import XCTest
@testable import BrokerCore

/// The seed documents' manifests, as JSON (the API reads YAML into exactly this form);
/// labels, annotations and quantities as the documents write them.
enum SeedManifests {
    /// ack-one-multi-region-virtual-nodes: CPU, default region.
    static let cpuDefaultRegion: JSONValue = [
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": ["labels": ["app": "nginx-default-region"], "name": "nginx-deployment-default-region", "namespace": "default"],
        "spec": [
            "replicas": 1, "selector": ["matchLabels": ["app": "nginx-default-region"]],
            "template": [
                "metadata": ["labels": [
                    "alibabacloud.com/acs": "true", "alibabacloud.com/compute-class": "general-purpose",
                    "alibabacloud.com/compute-qos": "default", "app": "nginx-default-region",
                ]],
                "spec": ["containers": [[
                    "image": "mirrors-ssl.aliyuncs.com/nginx:stable-alpine", "imagePullPolicy": "IfNotPresent",
                    "name": "nginx", "ports": [["containerPort": 80, "protocol": "TCP"]],
                ]]],
            ],
        ],
    ]

    /// ack-one-multi-region-virtual-nodes: GPU, specified region.
    static let gpuSpecifiedRegion: JSONValue = [
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": ["labels": ["app": "nginx-gpu-specified-region"], "name": "nginx-gpu-deployment-specified-region", "namespace": "default"],
        "spec": [
            "replicas": 1, "selector": ["matchLabels": ["app": "nginx-gpu-specified-region"]],
            "template": [
                "metadata": ["labels": [
                    "alibabacloud.com/acs": "true", "alibabacloud.com/compute-class": "gpu",
                    "alibabacloud.com/compute-qos": "default", "alibabacloud.com/gpu-model-series": "example-model",
                    "alibabacloud.com/serverless-region-id": "cn-beijing", "app": "nginx-gpu-specified-region",
                ]],
                "spec": ["containers": [[
                    "image": "mirrors-ssl.aliyuncs.com/nginx:stable-alpine", "name": "nginx",
                    "resources": [
                        "limits": ["cpu": 1, "memory": "1Gi", "nvidia.com/gpu": "1"],
                        "requests": ["cpu": 1, "memory": "1Gi", "nvidia.com/gpu": "1"],
                    ],
                ]]],
            ],
        ],
    ]

    /// ack-registered-cluster-eci-resourcepolicy: the GPU pod on ECI.
    static let eciGPUPod: JSONValue = [
        "apiVersion": "v1", "kind": "Pod",
        "metadata": [
            "name": "gpu-pod", "labels": ["alibabacloud.com/eci": "true"],
            "annotations": ["k8s.aliyun.com/eci-use-specs": "ecs.gn5-c4g1.xlarge"],
        ],
        "spec": [
            "restartPolicy": "Never",
            "containers": [[
                "name": "cuda-container",
                "image": "acr-multiple-clusters-registry.cn-hangzhou.cr.aliyuncs.com/ack-multiple-clusters/cuda10.2-vectoradd",
                "resources": ["limits": ["nvidia.com/gpu": 1]],
            ]],
        ],
    ]

    /// ack-registered-cluster-eci-resourcepolicy: the Deployment a ResourcePolicy selects.
    static let resourcePolicyDeployment: JSONValue = [
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": ["name": "nginx", "labels": ["app": "nginx"]],
        "spec": [
            "replicas": 2, "selector": ["matchLabels": ["app": "nginx"]],
            "template": [
                "metadata": ["name": "nginx", "annotations": ["addannotion": "true"], "labels": ["app": "nginx"]],
                "spec": [
                    "schedulerName": "ack-co-scheduler",
                    "containers": [[
                        "name": "nginx", "image": "acr-multiple-clusters-registry.cn-hangzhou.cr.aliyuncs.com/ack-multiple-clusters/nginx",
                        "resources": ["requests": ["cpu": 2], "limits": ["cpu": 2]],
                    ]],
                ],
            ],
        ],
    ]

    /// ctyun-multi-region-serverless-policy: GPU, specified region (the placeholder as written).
    static let ctyunSpecifiedRegion: JSONValue = [
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": ["labels": ["esx": "nginx-gpu-specified-region"], "name": "nginx-gpu-deployment-specified-region", "namespace": "default"],
        "spec": [
            "replicas": 1, "selector": ["matchLabels": ["esx": "nginx-gpu-specified-region"]],
            "template": [
                "metadata": ["labels": [
                    "ctyun.cn/esx": "true", "ctyun.cn/compute-class": "gpu", "ctyun.cn/compute-qos": "default",
                    "ctyun.cn/gpu-model-series": "example-model", "ctyun.cn/specified-region-id": "<RegionID>",
                    "esx": "nginx-gpu-specified-region",
                ]],
                "spec": ["containers": [[
                    "image": "nginx:stable-alpine", "name": "nginx",
                    "resources": [
                        "limits": ["cpu": 1, "memory": "1Gi", "nvidia.com/gpu": "1"],
                        "requests": ["cpu": 1, "memory": "1Gi", "nvidia.com/gpu": "1"],
                    ],
                ]]],
            ],
        ],
    ]
}

final class ManifestTranslatorTests: XCTestCase {
    /// The one workload of a one-document manifest.
    func translate(_ manifest: JSONValue, catalog: InstanceCatalog = .empty) throws -> ManifestTranslation {
        try ManifestTranslator.plan([manifest], catalog: catalog).workloads[0]
    }

    /// Exactly one error, on `field`, whose message contains `message`.
    func expectError<T>(
        _ field: String, _ message: String, _ body: @autoclosure () throws -> T,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        assertError(field, message, file: file, line: line) { try body() }
    }

    // MARK: seeds

    func testCPUDeploymentInTheDefaultRegion() throws {
        let t = try translate(SeedManifests.cpuDefaultRegion)
        XCTAssertEqual(t.kind.kind, "Deployment")
        XCTAssertEqual(t.vocabulary, .alibabaCloud)
        XCTAssertEqual(t.requests.count, 1)
        let r = t.requests[0]
        XCTAssertEqual(r.shape.computeClass, .generalPurpose)
        XCTAssertEqual(r.shape.qos, .default)
        XCTAssertEqual(r.shape.gpuCount, 0)
        XCTAssertEqual(r.shape.cpu, ManifestTranslator.defaultCPU)
        XCTAssertEqual(r.shape.memoryGiB, ManifestTranslator.defaultMemoryGiB)
        XCTAssertNil(r.region)
        XCTAssertNil(r.shape.instanceType)
        XCTAssertEqual(r.replicas, 1)
        XCTAssertEqual(r.labels["app"], "nginx-default-region")
        XCTAssertEqual(r.labels["alibabacloud.com/acs"], "true")
        XCTAssertFalse(r.queue)
    }

    func testGPUDeploymentInASpecifiedRegion() throws {
        let r = try translate(SeedManifests.gpuSpecifiedRegion).requests[0]
        XCTAssertEqual(r.shape.computeClass, .gpu)
        XCTAssertEqual(r.shape.gpuSeries, ["example-model"])
        XCTAssertEqual(r.shape.gpuCount, 1)
        XCTAssertEqual(r.shape.cpu, 1)
        XCTAssertEqual(r.shape.memoryGiB, 1)
        XCTAssertEqual(r.region, "cn-beijing")
    }

    func testECIPodWithAnInstanceTypeAndOnlyAGPULimit() throws {
        let t = try translate(SeedManifests.eciGPUPod)
        XCTAssertEqual(t.kind.kind, "Pod")
        XCTAssertEqual(t.vocabulary, .alibabaCloud)
        let r = t.requests[0]
        XCTAssertEqual(r.shape.computeClass, .gpu, "GPUs requested without a class label: gpu")
        XCTAssertEqual(r.shape.gpuSeries, [])
        XCTAssertEqual(r.shape.gpuCount, 1)
        XCTAssertEqual(r.shape.instanceType, "ecs.gn5-c4g1.xlarge")
        XCTAssertEqual(r.replicas, 1)
        XCTAssertEqual(r.labels, ["alibabacloud.com/eci": "true"])
    }

    func testResourcePolicyDeploymentIsNeutralAndCarriesItsSelectorLabels() throws {
        let t = try translate(SeedManifests.resourcePolicyDeployment)
        XCTAssertEqual(t.vocabulary, .neutral)
        let r = t.requests[0]
        XCTAssertEqual(r.shape.computeClass, .generalPurpose)
        XCTAssertEqual(r.shape.cpu, 2)
        XCTAssertEqual(r.shape.memoryGiB, ManifestTranslator.defaultMemoryGiB)
        XCTAssertEqual(r.replicas, 2)
        XCTAssertEqual(r.labels, ["app": "nginx"])
    }

    func testCtyunPlaceholderRegionIsRejectedAndARealOneAccepted() throws {
        expectError(
            "spec.template.metadata.labels.ctyun.cn/specified-region-id", "region id",
            try translate(SeedManifests.ctyunSpecifiedRegion))
        let real = SeedManifests.ctyunSpecifiedRegion.setting(
            ["spec", "template", "metadata", "labels", "ctyun.cn/specified-region-id"], to: "cn-huadong1")
        let t = try translate(real)
        XCTAssertEqual(t.vocabulary, .ctyun)
        XCTAssertEqual(t.requests[0].region, "cn-huadong1")
        XCTAssertEqual(t.requests[0].shape.gpuSeries, ["example-model"])
        XCTAssertEqual(t.requests[0].shape.computeClass, .gpu)
    }

    // MARK: quantities

    func container(_ resources: JSONValue) -> JSONValue {
        ["name": "c", "image": "x", "resources": resources]
    }

    func pod(_ containers: [JSONValue], labels: JSONValue = [:], annotations: JSONValue? = nil, initContainers: [JSONValue]? = nil) -> JSONValue {
        var metadata: [String: JSONValue] = ["name": "p", "labels": labels]
        if let annotations { metadata["annotations"] = annotations }
        var spec: [String: JSONValue] = ["containers": .array(containers)]
        if let initContainers { spec["initContainers"] = .array(initContainers) }
        return ["apiVersion": "v1", "kind": "Pod", "metadata": .object(metadata), "spec": .object(spec)]
    }

    func testQuantitiesAreSummedOverContainersRequestsBeforeLimits() throws {
        let t = try translate(pod([
            container(["requests": ["cpu": "500m", "memory": "512Mi"], "limits": ["cpu": 4, "memory": "8Gi"]]),
            container(["limits": ["cpu": "1.5", "memory": "1G", "nvidia.com/gpu": "2"]]),
            container(["requests": ["memory": 1_073_741_824]]),
        ]))
        let s = t.requests[0].shape
        XCTAssertEqual(s.cpu, 2, accuracy: 1e-9)
        XCTAssertEqual(s.memoryGiB, 0.5 + 1e9 / 0x1p30 + 1, accuracy: 1e-9)
        XCTAssertEqual(s.gpuCount, 2)
        XCTAssertEqual(s.computeClass, .gpu)
    }

    func testInitContainersCountAsKubernetesCountsThem() throws {
        let t = try translate(pod(
            [container(["requests": ["cpu": 1, "memory": "1Gi"]])],
            initContainers: [container(["requests": ["cpu": 3]]), container(["requests": ["memory": "512Mi"]])]))
        XCTAssertEqual(t.requests[0].shape.cpu, 3)
        XCTAssertEqual(t.requests[0].shape.memoryGiB, 1)
    }

    func testBadQuantitiesNameTheirField() {
        let deployment = SeedManifests.gpuSpecifiedRegion.setting(
            ["spec", "template", "spec", "containers"],
            to: [["name": "a", "resources": ["requests": ["cpu": "lots", "memory": "1Gi"]]],
                 ["name": "b", "resources": ["limits": ["memory": "-1Gi", "nvidia.com/gpu": "1.5"]]]])
        XCTAssertEqual(
            failingFields { try translate(deployment) },
            [
                "spec.template.spec.containers[0].resources.requests.cpu",
                "spec.template.spec.containers[1].resources.limits.memory",
                "spec.template.spec.containers[1].resources.limits.nvidia.com/gpu",
            ])
        expectError("spec.containers[0].resources.requests.cpu", "not a quantity",
                    try translate(pod([container(["requests": ["cpu": true]])])))
        expectError("spec.containers[0].resources.requests.memory", "unknown suffix",
                    try translate(pod([container(["requests": ["memory": "1GB"]])])))
        expectError("spec.containers.resources", "more than 64 devices",
                    try translate(pod([container(["limits": ["nvidia.com/gpu": 40]]), container(["limits": ["nvidia.com/gpu": 40]])])))
    }

    // MARK: labels

    func testClassAndQoSLabelsInBothVocabularies() throws {
        let ali = try translate(pod([container(["requests": ["cpu": 1]])],
            labels: ["alibabacloud.com/compute-class": "performance", "alibabacloud.com/compute-qos": "best-effort"]))
        XCTAssertEqual(ali.requests[0].shape.computeClass, .performance)
        XCTAssertEqual(ali.requests[0].shape.qos, .bestEffort)
        let ct = try translate(pod([container([:])],
            labels: ["ctyun.cn/compute-class": "General-Purpose", "ctyun.cn/compute-qos": "best-effort"]))
        XCTAssertEqual(ct.vocabulary, .ctyun)
        XCTAssertEqual(ct.requests[0].shape.computeClass, .generalPurpose)
        XCTAssertEqual(ct.requests[0].shape.qos, .bestEffort)
    }

    func testGPUClassWithoutGPURequestsAsksForOne() throws {
        let t = try translate(pod([container([:])], labels: ["alibabacloud.com/compute-class": "gpu",
                                                             "alibabacloud.com/gpu-model-series": "T4"]))
        XCTAssertEqual(t.requests[0].shape.gpuCount, 1)
        XCTAssertEqual(t.requests[0].shape.gpuSeries, ["T4"])
    }

    func testLabelErrors() {
        expectError("metadata.labels.alibabacloud.com/compute-class", "must be one of",
                    try translate(pod([container([:])], labels: ["alibabacloud.com/compute-class": "gpu-xl"])))
        expectError("metadata.labels.ctyun.cn/compute-qos", "must be one of",
                    try translate(pod([container([:])], labels: ["ctyun.cn/compute-qos": "spot"])))
        expectError("metadata.labels.alibabacloud.com/compute-class", "nvidia.com/gpu",
                    try translate(pod([container(["limits": ["nvidia.com/gpu": 1]])],
                                      labels: ["alibabacloud.com/compute-class": "general-purpose"])))
        expectError("metadata.labels.alibabacloud.com/gpu-model-series", "only allowed",
                    try translate(pod([container([:])], labels: ["alibabacloud.com/gpu-model-series": "T4",
                                                                 "alibabacloud.com/compute-class": "performance"])))
        expectError("metadata.labels.ctyun.cn/compute-class", "disagrees",
                    try translate(pod([container([:])], labels: ["alibabacloud.com/compute-class": "gpu",
                                                                 "ctyun.cn/compute-class": "performance"])))
        expectError("metadata.labels.app", "must be a string",
                    try translate(pod([container([:])], labels: ["app": 1])))
        expectError("metadata.annotations.k8s.aliyun.com/eci-use-specs", "separated by commas",
                    try translate(pod([container([:])], annotations: ["k8s.aliyun.com/eci-use-specs": "a,,b"])))
    }

    func testSeveralInstanceTypesBecomeOrderedRequests() throws {
        let t = try translate(pod([container(["limits": ["nvidia.com/gpu": 1]])],
            annotations: ["k8s.aliyun.com/eci-use-specs": "ecs.gn6i-c4g1.xlarge, ecs.gn5-c4g1.xlarge,ecs.gn6i-c4g1.xlarge"]))
        XCTAssertEqual(t.requests.map(\.shape.instanceType), ["ecs.gn6i-c4g1.xlarge", "ecs.gn5-c4g1.xlarge"])
        XCTAssertEqual(Set(t.requests.map(\.replicas)), [1])
    }

    // MARK: structure

    func testNotAPodOrDeployment() {
        expectError("kind", "Frobnicator of API group example.com runs pods, but the broker does not know where this kind keeps",
                    try translate(["apiVersion": "example.com/v1", "kind": "Frobnicator", "metadata": ["name": "x"],
                                   "spec": ["containers": [["name": "c", "image": "x"]]]]))
        expectError("kind", "one pod on every node", try translate(["apiVersion": "apps/v1", "kind": "DaemonSet"]))
        expectError("kind", "is required", try translate(["apiVersion": "v1"]))
        expectError("", "must be an object", try translate([1, 2]))
        expectError("kind", "must have apiVersion apps/v1, not extensions/v1beta1",
                    try translate(SeedManifests.cpuDefaultRegion.setting(["apiVersion"], to: "extensions/v1beta1")))
        XCTAssertEqual(failingFields { try translate(["apiVersion": "apps/v1", "kind": "Deployment"]) }, ["metadata", "spec.template"])
        XCTAssertEqual(failingFields { try translate(["apiVersion": "v1", "kind": "Pod", "metadata": [:], "spec": [:]]) },
                       ["metadata.name", "spec.containers"])
        XCTAssertTrue(try translate(SeedManifests.cpuDefaultRegion.setting(["spec", "replicas"], to: 0)).isEmpty)
        // Null is absent, as Kubernetes reads it.
        expectError("spec.template", "is required: the pod template", try translate(SeedManifests.cpuDefaultRegion.setting(["spec", "template"], to: .null)))
    }

    func testMissingReplicasMeansOne() throws {
        var d = SeedManifests.resourcePolicyDeployment
        d = .object(d.objectValue!.merging(["spec": .object(d["spec"]!.objectValue!.filter { $0.key != "replicas" })]) { $1 })
        XCTAssertEqual(try translate(d).requests[0].replicas, 1)
    }

    // MARK: per-region manifests

    func testDeploymentIsSplitPerRegionWithLabelsInItsOwnVocabulary() throws {
        let t = try translate(SeedManifests.gpuSpecifiedRegion.setting(["spec", "replicas"], to: 3))
        let out = ManifestTranslator.regionManifests(t, grants: [RegionGrant(region: "cn-beijing", replicas: 2), RegionGrant(region: "cn-hangzhou", replicas: 1)])
        XCTAssertEqual(out.count, 2)
        XCTAssertEqual(out[0]["metadata"]?["name"], "nginx-gpu-deployment-specified-region-cn-beijing")
        XCTAssertEqual(out[0]["spec"]?["replicas"], 2)
        XCTAssertEqual(out[1]["spec"]?["replicas"], 1)
        XCTAssertEqual(out[1].value(at: ["spec", "template", "metadata", "labels", "alibabacloud.com/serverless-region-id"]), "cn-hangzhou")
        XCTAssertEqual(out[1].value(at: ["spec", "template", "spec", "nodeSelector", "topology.kubernetes.io/region"]), "cn-hangzhou")
        XCTAssertEqual(out[1].value(at: ["spec", "template", "metadata", "labels", "app"]), "nginx-gpu-specified-region")
        XCTAssertEqual(out[1].value(at: ["spec", "selector", "matchLabels"]),
                       ["app": "nginx-gpu-specified-region", "alibabacloud.com/serverless-region-id": "cn-hangzhou"])
        // Everything else is the input, unchanged.
        let back = out[0].setting(["metadata", "name"], to: "nginx-gpu-deployment-specified-region")
            .setting(["spec", "replicas"], to: 1)
            .setting(["spec", "template", "metadata", "labels", "alibabacloud.com/serverless-region-id"], to: "cn-beijing")
            .setting(["spec", "selector"], to: SeedManifests.gpuSpecifiedRegion.value(at: ["spec", "selector"])!)
        XCTAssertEqual(back.value(at: ["spec", "template", "spec", "containers"]),
                       SeedManifests.gpuSpecifiedRegion.value(at: ["spec", "template", "spec", "containers"]))
        XCTAssertEqual(back.setting(["spec", "template", "spec", "nodeSelector"], to: .null)
                           .setting(["spec", "template", "spec"], to: .null),
                       SeedManifests.gpuSpecifiedRegion.setting(["spec", "template", "spec"], to: .null))
    }

    func testVocabulariesOfTheInjectedRegionLabel() throws {
        let ctyun = try translate(SeedManifests.ctyunSpecifiedRegion.setting(
            ["spec", "template", "metadata", "labels", "ctyun.cn/specified-region-id"], to: "cn-huadong1"))
        XCTAssertEqual(ManifestTranslator.regionManifests(ctyun, grants: [RegionGrant(region: "cn-huadong1", replicas: 1)])[0]
            .value(at: ["spec", "template", "metadata", "labels", "ctyun.cn/specified-region-id"]), "cn-huadong1")
        let neutral = try translate(SeedManifests.resourcePolicyDeployment)
        let n = ManifestTranslator.regionManifests(neutral, grants: [RegionGrant(region: "idc-shanghai", replicas: 2)])[0]
        XCTAssertEqual(n.value(at: ["spec", "template", "metadata", "labels", "topology.kubernetes.io/region"]), "idc-shanghai")
        XCTAssertNil(n.value(at: ["spec", "template", "metadata", "labels", "alibabacloud.com/serverless-region-id"]))
        XCTAssertEqual(n.value(at: ["spec", "template", "metadata", "annotations"]), ["addannotion": "true"])
    }

    func testPodGetsItsRegionOnItsOwnMetadataAndSpec() throws {
        let t = try translate(SeedManifests.eciGPUPod)
        let out = ManifestTranslator.regionManifests(t, grants: [RegionGrant(region: "cn-hangzhou", replicas: 1)])
        XCTAssertEqual(out.count, 1)
        XCTAssertEqual(out[0]["metadata"]?["name"], "gpu-pod-cn-hangzhou")
        XCTAssertEqual(out[0].value(at: ["metadata", "labels", "alibabacloud.com/serverless-region-id"]), "cn-hangzhou")
        XCTAssertEqual(out[0].value(at: ["metadata", "labels", "alibabacloud.com/eci"]), "true")
        XCTAssertEqual(out[0].value(at: ["spec", "nodeSelector", "topology.kubernetes.io/region"]), "cn-hangzhou")
        XCTAssertNil(out[0]["spec"]?["replicas"])
        XCTAssertEqual(out[0].value(at: ["metadata", "annotations", "k8s.aliyun.com/eci-use-specs"]), "ecs.gn5-c4g1.xlarge")
    }

    func testChosenInstanceTypeReplacesTheList() throws {
        let t = try translate(pod([container([:])], annotations: ["k8s.aliyun.com/eci-use-specs": "a.large,b.large"]))
        let out = ManifestTranslator.regionManifests(t, grants: [RegionGrant(region: "r", replicas: 1, instanceTypes: ["b.large"])])
        XCTAssertEqual(out[0].value(at: ["metadata", "annotations", "k8s.aliyun.com/eci-use-specs"]), "b.large")
    }

    func testGrantsKeepFirstAppearanceOrderAndRankTypesAndSeries() {
        let grants = ManifestTranslator.grants(instances: [
            ("b", "t1", "T4"), ("a", "t1", nil), ("b", "t2", "A10"), ("c", "t1", nil), ("a", "t1", nil), ("b", "t2", "A10"),
        ])
        XCTAssertEqual(grants.map(\.region), ["b", "a", "c"])
        XCTAssertEqual(grants.map(\.replicas), [3, 2, 1])
        XCTAssertEqual(grants[0].instanceTypes, ["t2", "t1"])
        XCTAssertEqual(grants[0].gpuSeries, ["A10", "T4"])
        XCTAssertEqual(grants[1].gpuSeries, [])
        XCTAssertTrue(ManifestTranslator.grants(instances: []).isEmpty)
    }

    func testExistingNodeSelectorIsKept() throws {
        let d = SeedManifests.resourcePolicyDeployment.setting(["spec", "template", "spec", "nodeSelector"], to: ["disk": "ssd"])
        let out = ManifestTranslator.regionManifests(try translate(d), grants: [RegionGrant(region: "r", replicas: 2)])
        XCTAssertEqual(out[0].value(at: ["spec", "template", "spec", "nodeSelector"]),
                       ["disk": "ssd", "topology.kubernetes.io/region": "r"])
    }
}
