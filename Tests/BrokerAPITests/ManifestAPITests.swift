import BrokerCore
import Foundation
import JSON
import TestSupport
import XCTest

@testable import BrokerAPI

/// The seed documents' example manifests, copied as written (labels, annotations, quantities
/// and comments); the one-line copies in the zh-tw and fleet documents are laid out again.
enum SeedYAML {
    /// ack-one-multi-region-virtual-nodes (en, zh-tw): CPU, default region.
    static let cpuDefaultRegion = """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          labels:
            app: nginx-default-region
          name: nginx-deployment-default-region
          namespace: default
        spec:
          replicas: 1
          selector:
            matchLabels:
              app: nginx-default-region
          template:
            metadata:
              labels:
                alibabacloud.com/acs: "true"
                alibabacloud.com/compute-class: general-purpose 
                alibabacloud.com/compute-qos: default 
                app: nginx-default-region
            spec:  
              containers:
                - image: 'mirrors-ssl.aliyuncs.com/nginx:stable-alpine'
                  imagePullPolicy: IfNotPresent
                  name: nginx
                  ports:
                    - containerPort: 80
                      protocol: TCP
        """

    /// ack-one-multi-region-virtual-nodes (en, zh-tw): CPU, specified region.
    static let cpuSpecifiedRegion = """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          labels:
            app: nginx-specified-region
          name: nginx-deployment-specified-region
          namespace: default
        spec:
          replicas: 1
          selector:
            matchLabels:
              app: nginx-specified-region
          template:
            metadata:
              labels:
                alibabacloud.com/acs: "true"
                alibabacloud.com/compute-class: general-purpose 
                alibabacloud.com/compute-qos: default 
                alibabacloud.com/serverless-region-id: cn-beijing # Specify the region.
                app: nginx-specified-region
            spec:  
              containers:
                - image: 'mirrors-ssl.aliyuncs.com/nginx:stable-alpine'
                  imagePullPolicy: IfNotPresent
                  name: nginx
                  ports:
                    - containerPort: 80
                      protocol: TCP
        """

    /// ack-one-multi-region-virtual-nodes (en, zh-tw): GPU, default region.
    static let gpuDefaultRegion = """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          labels:
            app: nginx-gpu-default-region
          name: nginx-gpu-deployment-default-region
          namespace: default
        spec:
          replicas: 1
          selector:
            matchLabels:
              app: nginx-gpu-default-region
          template:
            metadata:
              labels:
                alibabacloud.com/acs: "true"
                alibabacloud.com/compute-class: gpu
                alibabacloud.com/compute-qos: default
                alibabacloud.com/gpu-model-series: example-model  # The GPU model. Specify the actual model that you want to use, such as T4.
                app: nginx-gpu-default-region
            spec:  
              containers:
                - image: 'mirrors-ssl.aliyuncs.com/nginx:stable-alpine'
                  imagePullPolicy: IfNotPresent
                  name: nginx
                  ports:
                    - containerPort: 80
                      protocol: TCP
                  resources:
                    limits:
                      cpu: 1
                      memory: 1Gi
                      nvidia.com/gpu: "1"
                    requests:
                      cpu: 1
                      memory: 1Gi
                      nvidia.com/gpu: "1"
        """

    /// ack-one-multi-region-virtual-nodes (en, zh-tw): GPU, specified region.
    static let gpuSpecifiedRegion = """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          labels:
            app: nginx-gpu-specified-region
          name: nginx-gpu-deployment-specified-region
          namespace: default
        spec:
          replicas: 1
          selector:
            matchLabels:
              app: nginx-gpu-specified-region
          template:
            metadata:
              labels:
                alibabacloud.com/acs: "true"
                alibabacloud.com/compute-class: gpu
                alibabacloud.com/compute-qos: default
                alibabacloud.com/gpu-model-series: example-model  # The GPU model. Specify the actual model that you want to use, such as T4.
                alibabacloud.com/serverless-region-id: cn-beijing # Specify the region.
                app: nginx-gpu-specified-region
            spec:  
              containers:
                - image: 'mirrors-ssl.aliyuncs.com/nginx:stable-alpine'
                  imagePullPolicy: IfNotPresent
                  name: nginx
                  ports:
                    - containerPort: 80
                      protocol: TCP
                  resources:
                    limits:
                      cpu: 1
                      memory: 1Gi
                      nvidia.com/gpu: "1"
                    requests:
                      cpu: 1
                      memory: 1Gi
                      nvidia.com/gpu: "1"
        """

    /// ack-registered-cluster-eci-resourcepolicy: the GPU pod on ECI.
    static let eciGPUPod = """
        apiVersion: v1
        kind: Pod
        metadata:
          name: gpu-pod
          labels:
            alibabacloud.com/eci: "true"  # Run the pod on a serverless elastic container instance. 
          annotations:
            k8s.aliyun.com/eci-use-specs: ecs.gn5-c4g1.xlarge  # Specify an ECS instance type. An ECS instance of this type is equipped with an NVIDIA P100 GPU. 
        spec:
          restartPolicy: Never
          containers:
            - name: cuda-container
              image: acr-multiple-clusters-registry.cn-hangzhou.cr.aliyuncs.com/ack-multiple-clusters/cuda10.2-vectoradd
              resources:
                limits:
                  nvidia.com/gpu: 1 # Apply for a GPU. 
        """

    /// ack-registered-cluster-eci-resourcepolicy: the Deployment its ResourcePolicy selects.
    static let resourcePolicyDeployment = """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: nginx
          labels:
            app: nginx
        spec:
          replicas: 2
          selector:
            matchLabels:
              app: nginx
          template:
            metadata:
              name: nginx
              annotations:
                addannotion: "true"
              labels:
                app: nginx      # The pod label must be the same as the one that you specified for the selector in the ResourcePolicy. 
            spec:
              schedulerName: ack-co-scheduler
              containers:
              - name: nginx
                image: acr-multiple-clusters-registry.cn-hangzhou.cr.aliyuncs.com/ack-multiple-clusters/nginx
                resources:
                  requests:
                    cpu: 2
                  limits:
                    cpu: 2
        """

    /// ack-one-fleet-inventory-aware-scheduling: the vLLM Deployment (one line in the document).
    static let fleetQwen = """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          labels:
            app: qwen3-8b
          name: qwen3-8b
          namespace: default
        spec:
          replicas: 4
          selector:
            matchLabels:
              app: qwen3-8b
          template:
            metadata:
              labels:
                app: qwen3-8b
            spec:
              volumes:
                - name: qwen3-8b
                  persistentVolumeClaim:
                    claimName: qwen3-8b
                - name: dshm
                  emptyDir:
                    medium: Memory
                    sizeLimit: 20Gi
              containers:
                - command:
                    - sh
                    - -c
                    - vllm serve /models/qwen3-8b --port 8000 --trust-remote-code --served-model-name qwen3-8b --tensor-parallel=1 --max-model-len 8192 --gpu-memory-utilization 0.95 --enforce-eager
                  image: kube-ai-registry.cn-shanghai.cr.aliyuncs.com/kube-ai/vllm-openai:v0.9.1
                  name: vllm
                  ports:
                    - containerPort: 8000
                  readinessProbe:
                    tcpSocket:
                      port: 8000
                    initialDelaySeconds: 30
                    periodSeconds: 30
                  resources:
                    limits:
                      nvidia.com/gpu: "1"
                  volumeMounts:
                    - mountPath: /models/qwen3-8b
                      name: qwen3-8b
                    - mountPath: /dev/shm
                      name: dshm
        """

    /// ctyun-multi-region-serverless-policy: GPU, specified region (placeholder as written).
    static let ctyunSpecifiedRegion = """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          labels:
            esx: nginx-gpu-specified-region
          name: nginx-gpu-deployment-specified-region
          namespace: default
        spec:
          replicas: 1
          selector:
            matchLabels:
              esx: nginx-gpu-specified-region
          template:
            metadata:
              labels:
                ctyun.cn/esx: "true"
                ctyun.cn/compute-class: gpu
                ctyun.cn/compute-qos: default
                ctyun.cn/gpu-model-series: example-model  # GPU卡型,请按照实际情况替换,例如T4
                ctyun.cn/specified-region-id: <RegionID> # 通过该标签指定地域,若不指定会使用默认地域,// RegionID由集群服务提供
                esx: nginx-gpu-specified-region
            spec: 
              containers:
                - image: 'nginx:stable-alpine'
                  imagePullPolicy: IfNotPresent
                  name: nginx
                  ports:
                    - containerPort: 80
                      protocol: TCP
                  resources:
                    limits:
                      cpu: 1
                      memory: 1Gi
                      nvidia.com/gpu: "1"
                    requests:
                      cpu: 1
                      memory: 1Gi
                      nvidia.com/gpu: "1"
        """
}

final class ManifestAPITests: XCTestCase {
    var broker: TestBroker!
    var token: String!

    override func setUp() async throws {
        broker = try TestBroker()
        token = try await broker.tenant().token
        // The seeds' GPU series is the placeholder "example-model"; inventory carries it as written.
        try await broker.region("cn-beijing")
        try await broker.region("cn-hangzhou")
        try await broker.pool("cn-beijing", "cpu", cpu: 4, memory: 8, capacity: 10)
        try await broker.pool("cn-hangzhou", "cpu", cpu: 4, memory: 8, capacity: 10, price: 0.5)
        try await broker.pool("cn-beijing", "example", series: "example-model", vendor: "nvidia", capacity: 10, price: 2)
        try await broker.pool("cn-hangzhou", "example", series: "example-model", vendor: "nvidia", capacity: 10, price: 3)
        try await broker.pool("cn-hangzhou", "p100", series: "P100", gpuMemory: 16, cpu: 4, memory: 15,
                              capacity: 3, price: 1, instanceType: "ecs.gn5-c4g1.xlarge")
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func post(
        yaml: String, contentType: String = "application/yaml", headers: [String: String] = [:], token: String? = nil
    ) async throws -> TestBroker.Response {
        var all = headers
        all["Content-Type"] = contentType
        return try await broker.call(
            "POST", "/v1/allocations/from-manifest", token: token ?? self.token, body: Array(yaml.utf8), headers: all)
    }

    func post(json manifest: JSONValue, headers: [String: String] = [:]) async throws -> TestBroker.Response {
        try await broker.call("POST", "/v1/allocations/from-manifest", token: token, json: manifest, headers: headers)
    }

    func label(_ manifest: JSONValue, _ key: String, pod: Bool = false) -> String? {
        manifest.value(at: (pod ? [] : ["spec", "template"]) + ["metadata", "labels", key])?.stringValue
    }

    func nodeSelectorRegion(_ manifest: JSONValue, pod: Bool = false) -> String? {
        manifest.value(at: (pod ? [] : ["spec", "template"]) + ["spec", "nodeSelector", "topology.kubernetes.io/region"])?.stringValue
    }

    func verifyLedger() async throws {
        let report = try await LedgerCheck.run(broker)
        XCTAssertTrue(report.isEmpty, "ledger: \(report)")
    }

    // MARK: every seed manifest, YAML and JSON

    func testEverySeedManifestAsYAMLAndAsJSON() async throws {
        let cases: [(name: String, yaml: String, regions: [String], vocabularyLabel: String, pod: Bool)] = [
            ("cpu default", SeedYAML.cpuDefaultRegion, ["cn-beijing"], "alibabacloud.com/serverless-region-id", false),
            ("cpu specified", SeedYAML.cpuSpecifiedRegion, ["cn-beijing"], "alibabacloud.com/serverless-region-id", false),
            ("gpu default", SeedYAML.gpuDefaultRegion, ["cn-beijing"], "alibabacloud.com/serverless-region-id", false),
            ("gpu specified", SeedYAML.gpuSpecifiedRegion, ["cn-beijing"], "alibabacloud.com/serverless-region-id", false),
            ("eci pod", SeedYAML.eciGPUPod, ["cn-hangzhou"], "alibabacloud.com/serverless-region-id", true),
            ("resource policy", SeedYAML.resourcePolicyDeployment, ["cn-beijing"], "topology.kubernetes.io/region", false),
        ]
        for c in cases {
            let asJSON = try YAMLBodies.parse(Array(c.yaml.utf8))
            for (format, response) in [("yaml", try await post(yaml: c.yaml)), ("json", try await post(json: asJSON))] {
                let what = "\(c.name) as \(format)"
                XCTAssertEqual(response.status, 201, "\(what): \(response.text)")
                guard response.status == 201 else { continue }
                let allocation = response.json["allocation"]!
                XCTAssertEqual(allocation["status"], "active", what)
                XCTAssertNotNil(response.header("Location"), what)
                let manifests = response.json["manifests"]!.array
                XCTAssertEqual(manifests.count, c.regions.count, what)
                for (manifest, region) in zip(manifests, c.regions) {
                    XCTAssertEqual(label(manifest, c.vocabularyLabel, pod: c.pod), region, what)
                    XCTAssertEqual(nodeSelectorRegion(manifest, pod: c.pod), region, what)
                    XCTAssertEqual(manifest["metadata"]?["name"]?.stringValue,
                                   (asJSON["metadata"]?["name"]?.stringValue ?? "") + "-" + region, what)
                    XCTAssertEqual(manifest["kind"], asJSON["kind"], what)
                }
                XCTAssertEqual(Set(allocation["instances"]!.array.map { $0["region"]!.string! }), Set(c.regions), what)
            }
        }
        try await verifyLedger()
    }

    func testGPUSeedReadsClassSeriesQuantitiesAndPinnedRegion() async throws {
        let response = try await post(yaml: SeedYAML.gpuSpecifiedRegion)
        XCTAssertEqual(response.status, 201, response.text)
        let allocation = response.json["allocation"]!
        let shape = allocation["request"]!["shape"]!
        XCTAssertEqual(shape["computeClass"], "gpu")
        XCTAssertEqual(shape["gpuSeries"], ["example-model"])
        XCTAssertEqual(shape["gpuCount"], 1)
        XCTAssertEqual(shape["cpu"], 1)
        XCTAssertEqual(shape["memoryGiB"], 1)
        XCTAssertEqual(allocation["request"]!["region"], "cn-beijing")
        XCTAssertEqual(allocation["labels"]?["app"], "nginx-gpu-specified-region")
        XCTAssertEqual(allocation["instances"]![0]!["gpuSeries"], "example-model")
    }

    func testFleetDeploymentDividesReplicasOverRegionsOneManifestEach() async throws {
        // 4 replicas of any GPU series: cn-beijing (primary) holds 2 example-model, the rest falls back.
        try await broker.pool("cn-beijing", "example", series: "example-model", vendor: "nvidia", capacity: 2, price: 2)
        let response = try await post(yaml: SeedYAML.fleetQwen)
        XCTAssertEqual(response.status, 201, response.text)
        let manifests = response.json["manifests"]!.array
        let byRegion = Dictionary(uniqueKeysWithValues: manifests.map {
            (nodeSelectorRegion($0)!, $0["spec"]!["replicas"]!.int!)
        })
        XCTAssertEqual(byRegion.values.reduce(0, +), 4)
        XCTAssertEqual(byRegion["cn-beijing"], 2)
        XCTAssertEqual(Set(manifests.map { $0["metadata"]!["name"]!.string! }), Set(byRegion.keys.map { "qwen3-8b-\($0)" }))
        for manifest in manifests {
            let region = nodeSelectorRegion(manifest)!
            XCTAssertEqual(label(manifest, "topology.kubernetes.io/region"), region)
            XCTAssertEqual(label(manifest, "app"), "qwen3-8b")
            XCTAssertEqual(manifest["spec"]?["template"]?["spec"]?["volumes"]?[1]?["emptyDir"]?["sizeLimit"], "20Gi")
        }
        try await verifyLedger()
    }

    func testCtyunSeedAsWrittenNamesThePlaceholderAndWithARegionIsPlaced() async throws {
        let asWritten = try await post(yaml: SeedYAML.ctyunSpecifiedRegion, contentType: "text/yaml")
        XCTAssertEqual(asWritten.status, 422, asWritten.text)
        XCTAssertEqual(asWritten.json["code"], "validation_failed")
        XCTAssertEqual(asWritten.json["errors"]?[0]?["field"], "spec.template.metadata.labels.ctyun.cn/specified-region-id")
        let real = try await post(
            yaml: SeedYAML.ctyunSpecifiedRegion.replacingOccurrences(of: "<RegionID>", with: "cn-hangzhou"),
            contentType: "text/yaml")
        XCTAssertEqual(real.status, 201, real.text)
        let manifest = real.json["manifests"]![0]!
        XCTAssertEqual(label(manifest, "ctyun.cn/specified-region-id"), "cn-hangzhou")
        XCTAssertNil(label(manifest, "alibabacloud.com/serverless-region-id"))
        XCTAssertEqual(nodeSelectorRegion(manifest), "cn-hangzhou")
        XCTAssertEqual(real.json["allocation"]?["instances"]?[0]?["region"], "cn-hangzhou")
    }

    func testPodLabelsSelectATenantsNamedPolicyLikeAResourcePolicy() async throws {
        // The seed's ResourcePolicy: selector app=nginx, prefer cn-hangzhou (max 1), then any.
        let policy = try await broker.call(
            "PUT", "/v1/policies/cost-balance-policy", token: token,
            json: ["selector": ["app": "nginx"], "strategy": "prefer",
                   "units": [["regions": ["cn-hangzhou"], "max": 1], ["regions": ["*"]]]])
        XCTAssertTrue([200, 201].contains(policy.status), policy.text)
        let response = try await post(yaml: SeedYAML.resourcePolicyDeployment)
        XCTAssertEqual(response.status, 201, response.text)
        let manifests = response.json["manifests"]!.array
        XCTAssertEqual(manifests.map { nodeSelectorRegion($0)! }, ["cn-hangzhou", "cn-beijing"])
        XCTAssertEqual(manifests.map { $0["spec"]!["replicas"]!.int! }, [1, 1])
        XCTAssertEqual(manifests.map { $0["metadata"]!["name"]!.string! }, ["nginx-cn-hangzhou", "nginx-cn-beijing"])
    }

    // MARK: instance types

    func testSeveralInstanceTypesTakeTheFirstThatCanBeSatisfied() async throws {
        let yaml = SeedYAML.eciGPUPod.replacingOccurrences(
            of: "k8s.aliyun.com/eci-use-specs: ecs.gn5-c4g1.xlarge",
            with: "k8s.aliyun.com/eci-use-specs: ecs.gn6i-c4g1.xlarge,ecs.gn5-c4g1.xlarge")
        let response = try await post(yaml: yaml, headers: ["Idempotency-Key": "pod-1"])
        XCTAssertEqual(response.status, 201, response.text)
        XCTAssertEqual(response.json["allocation"]?["instances"]?[0]?["instanceType"], "ecs.gn5-c4g1.xlarge")
        let manifest = response.json["manifests"]![0]!
        XCTAssertEqual(manifest.value(at: ["metadata", "annotations", "k8s.aliyun.com/eci-use-specs"]), "ecs.gn5-c4g1.xlarge")
        // The replay answers the same allocation, though the first type is tried again.
        let replay = try await post(yaml: yaml, headers: ["Idempotency-Key": "pod-1"])
        XCTAssertEqual(replay.status, 201, replay.text)
        XCTAssertEqual(replay.json["allocation"]?["id"], response.json["allocation"]?["id"])
        XCTAssertEqual(replay.json["manifests"], response.json["manifests"])
        // Another body under the same key is refused.
        let other = try await post(yaml: SeedYAML.eciGPUPod.replacingOccurrences(of: "gpu-pod", with: "gpu-pod-2")
            .replacingOccurrences(of: "ecs.gn5-c4g1.xlarge", with: "ecs.other"), headers: ["Idempotency-Key": "pod-1"])
        XCTAssertEqual(other.status, 422, other.text)
        XCTAssertEqual(other.json["code"], "idempotency_key_reused")
        try await verifyLedger()
    }

    func testNoInstanceTypeFitsIs409WithEveryTypesDecisions() async throws {
        let yaml = SeedYAML.eciGPUPod.replacingOccurrences(
            of: "k8s.aliyun.com/eci-use-specs: ecs.gn5-c4g1.xlarge",
            with: "k8s.aliyun.com/eci-use-specs: ecs.a,ecs.b")
        let response = try await post(yaml: yaml)
        XCTAssertEqual(response.status, 409, response.text)
        XCTAssertEqual(response.json["code"], "insufficient_capacity")
        let reasons = response.json["decisions"]!.array.map { $0["reason"]!.string! }
        XCTAssertTrue(reasons.contains { $0.hasPrefix("ecs.a: ") }, "\(reasons)")
        XCTAssertTrue(reasons.contains { $0.hasPrefix("ecs.b: ") }, "\(reasons)")
        let list = try await broker.call("GET", "/v1/allocations", token: token)
        XCTAssertEqual(list.json["allocations"]?.array.count, 0)
    }

    // MARK: idempotency and YAML answers

    func testIdempotencyKeyReplaysTheFirstAnswer() async throws {
        let first = try await post(yaml: SeedYAML.cpuDefaultRegion, headers: ["Idempotency-Key": "k1"])
        let again = try await post(json: try YAMLBodies.parse(Array(SeedYAML.cpuDefaultRegion.utf8)), headers: ["Idempotency-Key": "k1"])
        XCTAssertEqual(first.status, 201, first.text)
        XCTAssertEqual(again.status, 201, again.text)
        XCTAssertEqual(again.json["allocation"]?["id"], first.json["allocation"]?["id"])
        let list = try await broker.call("GET", "/v1/allocations", token: token)
        XCTAssertEqual(list.json["allocations"]?.array.count, 1)
        let other = try await post(yaml: SeedYAML.cpuSpecifiedRegion, headers: ["Idempotency-Key": "k1"])
        XCTAssertEqual(other.status, 422)
        XCTAssertEqual(other.json["code"], "idempotency_key_reused")
    }

    func testAcceptYAMLAnswersTheWholeAnswerAsYAML() async throws {
        let response = try await post(yaml: SeedYAML.gpuSpecifiedRegion, headers: ["Accept": "application/yaml"])
        XCTAssertEqual(response.status, 201, response.text)
        XCTAssertEqual(response.header("Content-Type"), "application/yaml")
        let answer = try YAMLBodies.parse(response.body)
        XCTAssertEqual(answer["allocation"]?["status"], "active")
        let manifest = answer["manifests"]![0]!
        XCTAssertEqual(label(manifest, "alibabacloud.com/serverless-region-id"), "cn-beijing")
        // Strings that YAML would read as other types stay strings.
        XCTAssertEqual(label(manifest, "alibabacloud.com/acs"), "true")
        XCTAssertEqual(manifest.value(at: ["spec", "template", "spec", "containers"])?[0]?["resources"]?["limits"]?["nvidia.com/gpu"], "1")
        XCTAssertEqual(manifest["spec"]?["replicas"], 1)
        XCTAssertTrue(response.text.contains("kind: Deployment"), response.text)
    }

    // MARK: errors

    func testErrors() async throws {
        let unparsable = try await post(yaml: "kind: [Deployment\n")
        XCTAssertEqual(unparsable.status, 400, unparsable.text)
        XCTAssertEqual(unparsable.json["code"], "invalid_request")
        let badJSON = try await broker.call(
            "POST", "/v1/allocations/from-manifest", token: token, body: Array("{\"kind\":".utf8),
            headers: ["Content-Type": "application/json"])
        XCTAssertEqual(badJSON.status, 400)
        let brokenThird = try await post(yaml: SeedYAML.cpuDefaultRegion + "\n---\n" + SeedYAML.eciGPUPod + "\n---\nkind: [Pod\n")
        XCTAssertEqual(brokenThird.status, 400)
        XCTAssertTrue(brokenThird.text.contains("YAML document 2 is not valid YAML: line "), brokenThird.text)
        let empty = try await post(yaml: "")
        XCTAssertEqual(empty.status, 400)
        let notAWorkload = try await post(yaml: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: p\n")
        XCTAssertEqual(notAWorkload.status, 422, notAWorkload.text)
        XCTAssertEqual(notAWorkload.json["errors"]?[0]?["field"], "kind")
        let list = try await post(yaml: "- a\n- b\n")
        XCTAssertEqual(list.status, 422)
        let badQuantity = try await post(yaml: SeedYAML.resourcePolicyDeployment.replacingOccurrences(
            of: "cpu: 2", with: "cpu: two"))
        XCTAssertEqual(badQuantity.status, 422, badQuantity.text)
        XCTAssertEqual(badQuantity.json["errors"]?[0]?["field"], "spec.template.spec.containers[0].resources.requests.cpu")
        let badMemory = try await post(yaml: SeedYAML.gpuDefaultRegion.replacingOccurrences(
            of: "memory: 1Gi", with: "memory: 1GiB"))
        XCTAssertEqual(badMemory.status, 422, badMemory.text)
        XCTAssertEqual(badMemory.json["errors"]?[0]?["field"], "spec.template.spec.containers[0].resources.requests.memory")
        let wrongType = try await post(yaml: SeedYAML.cpuDefaultRegion, contentType: "text/plain")
        XCTAssertEqual(wrongType.status, 415)
        XCTAssertEqual(wrongType.json["code"], "unsupported_media_type")
        let noToken = try await broker.call(
            "POST", "/v1/allocations/from-manifest", body: Array(SeedYAML.cpuDefaultRegion.utf8),
            headers: ["Content-Type": "application/yaml"])
        XCTAssertEqual(noToken.status, 401)
        let admin = try await post(yaml: SeedYAML.cpuDefaultRegion, token: broker.adminToken)
        XCTAssertEqual(admin.status, 403)
        let aliases = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
        let bomb = try await post(yaml: aliases)
        XCTAssertEqual(bomb.status, 400, bomb.text)
        let full = try await post(yaml: SeedYAML.gpuSpecifiedRegion.replacingOccurrences(of: "replicas: 1", with: "replicas: 11"))
        XCTAssertEqual(full.status, 409, full.text)
        XCTAssertEqual(full.json["code"], "insufficient_capacity")
        let allocations = try await broker.call("GET", "/v1/allocations", token: token)
        XCTAssertEqual(allocations.json["allocations"]?.array.count, 0, "bad input never changes state")
        try await verifyLedger()
    }
}

private func with(_ object: JSONValue, _ key: String, _ value: JSONValue) -> JSONValue {
    var members = object.objectValue ?? [:]
    members[key] = value
    return .object(members)
}

final class SizingAPITests: XCTestCase {
    var broker: TestBroker!

    override func setUp() async throws {
        broker = try TestBroker()
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func testSevenBillionFP16AndCandidatesFromLiveInventory() async throws {
        try await broker.region("cn-beijing")
        try await broker.region("cn-hangzhou")
        try await broker.pool("cn-beijing", "t4", series: "T4", gpuMemory: 16, capacity: 3, price: 1)
        try await broker.pool("cn-hangzhou", "a10", series: "A10", gpuMemory: 24, capacity: 5, price: 2)
        try await broker.pool("cn-hangzhou", "v100", series: "V100", gpuMemory: 8, capacity: 1, price: 0.5)
        let token = try await broker.tenant().token
        let response = try await broker.call("POST", "/v1/sizing", token: token, json: ["parameters": "7B", "precision": "fp16"])
        XCTAssertEqual(response.status, 200, response.text)
        XCTAssertEqual(response.json["weightsGiB"], 13.04)
        XCTAssertEqual(response.json["kvCacheGiB"], 0)
        // 7e9 × 2 B = 13.0385 GiB; ÷ 0.9 = 14.4872 GiB, which rounds to 14.49 (14.48 is a truncation).
        XCTAssertEqual(response.json["requiredGiB"], 14.49)
        let candidates = response.json["candidates"]!.array
        XCTAssertEqual(candidates.map { $0["gpuSeries"]!.string! }, ["T4", "A10", "V100"])
        XCTAssertEqual(candidates.map { $0["gpusNeeded"]!.int! }, [1, 1, 2], "14.48 GiB fits one 16 GiB T4; 8 GiB cards need 2")
        XCTAssertEqual(candidates[0]["regions"]?[0]?["region"], "cn-beijing")
        XCTAssertEqual(candidates[0]["regions"]?[0]?["availableReplicas"], 3)
        let anonymous = try await broker.call("POST", "/v1/sizing", json: ["parameters": "7B", "precision": "fp16"])
        XCTAssertEqual(anonymous.status, 401)
        let bad = try await broker.call("POST", "/v1/sizing", token: token, json: ["parameters": "lots", "precision": "fp9"])
        XCTAssertEqual(bad.status, 422)
    }

    func testAllocationWithAModelPicksTheCheapestSeriesThatHoldsIt() async throws {
        try await broker.region("cn-beijing")
        try await broker.pool("cn-beijing", "v100", series: "V100", gpuMemory: 8, capacity: 5, price: 0.5)
        try await broker.pool("cn-beijing", "a10", series: "A10", gpuMemory: 24, capacity: 5, price: 2)
        try await broker.pool("cn-beijing", "t4", series: "T4", gpuMemory: 16, capacity: 1, price: 1)
        try await broker.pool("cn-beijing", "v100x2", series: "V100", gpuMemory: 8, gpus: 2, capacity: 5, price: 1.5)
        let token = try await broker.tenant().token
        let body: JSONValue = ["computeClass": "gpu", "cpu": 4, "memoryGiB": 16, "replicas": 3,
                               "model": ["parameters": "7B", "precision": "fp16"]]
        let response = try await broker.call("POST", "/v1/allocations", token: token, json: body)
        XCTAssertEqual(response.status, 201, response.text)
        // gpuMemoryGiB × gpuCount must cover 14.48: 8 × 1 does not; the T4 (1/h) first, then the A10 (2/h).
        XCTAssertEqual(response.json["instances"]!.array.map { $0["gpuSeries"]!.string! }, ["T4", "A10", "A10"])
        XCTAssertEqual(response.json["instances"]!.array.map { $0["poolId"]!.string! }, ["t4", "a10", "a10"])
        // Two GPUs per replica: 8 × 2 = 16 covers it; only the two-GPU V100 pool has two.
        let two = try await broker.call("POST", "/v1/allocations", token: token, json: with(body, "gpuCount", 2))
        XCTAssertEqual(two.status, 201, two.text)
        XCTAssertEqual(two.json["instances"]!.array.map { $0["poolId"]!.string! }, ["v100x2", "v100x2", "v100x2"])
        XCTAssertEqual(two.json["instances"]?[0]?["gpuCount"], 2)
    }
}
