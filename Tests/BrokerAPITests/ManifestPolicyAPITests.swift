import BrokerCore
import Foundation
import JSON
import TestSupport
import XCTest

@testable import BrokerAPI

/// The seeds' policy objects beside their workloads in one file, through the live route:
/// the placement they ask for, the policy kept once, and stored as a tenant's named policy.
final class ManifestPolicyAPITests: XCTestCase {
    var broker: TestBroker!
    var token: String!

    override func setUp() async throws {
        broker = try TestBroker()
        token = try await broker.tenant().token
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    /// The seed's ResourcePolicy as written (ack-registered-cluster-eci-resourcepolicy).
    static let seedResourcePolicy = """
        apiVersion: scheduling.alibabacloud.com/v1alpha1
        kind: ResourcePolicy
        metadata:
          name: cost-balance-policy
        spec:
          selector:
            app: nginx           # Select application pods.
            key1: value1
          strategy: prefer
          units:
          - resource: idc        # Prioritize on-premises nodes.
            max: 3
          - resource: eci        # Use serverless elastic container instances when on-premises nodes are insufficient.
            nodeSelector:
              key2: value2
        """

    /// The seed's Deployment, 5 replicas, its pods carrying both labels the policy selects.
    static let nginx = SeedYAML.resourcePolicyDeployment.replacingOccurrences(of: "replicas: 2", with: "replicas: 5")
        .replacingOccurrences(of: "app: nginx      #", with: "key1: value1\n        app: nginx      #")

    func post(_ yaml: String) async throws -> TestBroker.Response {
        try await broker.call(
            "POST", "/v1/allocations/from-manifest", token: token, body: Array(yaml.utf8),
            headers: ["Content-Type": "application/yaml"])
    }

    func running(_ allocation: JSONValue?) -> [String] {
        (allocation?["instances"]?.array ?? []).filter { $0["state"] == "running" }.map { $0["region"]!.string! }
    }

    /// An on-premises region and two serverless ones, room for 10 of the seed's pods each.
    func onPremisesAndServerless() async throws {
        try await broker.region("cn-hangzhou", primary: true)
        try await broker.region("idc-shanghai", kind: "on-premises")
        try await broker.region("cn-beijing")
        for region in ["cn-hangzhou", "idc-shanghai", "cn-beijing"] {
            try await broker.pool(region, "cpu", cpu: 4, memory: 8, capacity: 10)
        }
    }

    func testSeedResourcePolicyPlacesOnPremisesFirstAndScalesInServerlessFirst() async throws {
        try await onPremisesAndServerless()
        let response = try await post(Self.seedResourcePolicy + "\n---\n" + Self.nginx)
        XCTAssertEqual(response.status, 201, response.text)
        let allocation = response.json["allocation"]
        XCTAssertEqual(running(allocation), ["idc-shanghai", "idc-shanghai", "idc-shanghai", "cn-hangzhou", "cn-hangzhou"])
        let manifests = response.json["manifests"]!.array
        XCTAssertEqual(manifests.map { $0["kind"]!.string! }, ["ResourcePolicy", "Deployment", "Deployment"])
        XCTAssertEqual(response.json["manifestRegions"], [nil, "idc-shanghai", "cn-hangzhou"])
        XCTAssertEqual(manifests.dropFirst().map { $0["spec"]!["replicas"]!.int! }, [3, 2])
        XCTAssertEqual(response.json["policies"], [[
            "kind": "ResourcePolicy", "apiVersion": "scheduling.alibabacloud.com/v1alpha1", "name": "cost-balance-policy",
            "governs": ["Deployment/nginx"],
        ]])
        XCTAssertEqual(response.json["warnings"], [
            "ResourcePolicy cost-balance-policy: spec.units[1].nodeSelector.key2 is ignored: only a region key selects regions in a eci unit",
        ])
        // Scale-in 5 → 2: the serverless unit's replicas go first, then the newest on-premises one.
        let id = allocation!["id"]!.string!
        let scaled = try await broker.call("PATCH", "/v1/allocations/\(id)", token: token, json: ["replicas": 2])
        XCTAssertEqual(scaled.status, 200, scaled.text)
        XCTAssertEqual(running(scaled.json), ["idc-shanghai", "idc-shanghai"])
    }

    func testSeedAsWrittenIsPassedThroughWithAWarning() async throws {
        try await onPremisesAndServerless()
        // The seed's own Deployment labels its pods app=nginx only: the policy selects none.
        let response = try await post(Self.seedResourcePolicy + "\n---\n" + SeedYAML.resourcePolicyDeployment.replacingOccurrences(of: "replicas: 2", with: "replicas: 5"))
        XCTAssertEqual(response.status, 201, response.text)
        XCTAssertEqual(running(response.json["allocation"]), Array(repeating: "cn-hangzhou", count: 5))
        XCTAssertEqual(response.json["policies"]?[0]?["governs"], [])
        XCTAssertTrue(response.json["warnings"]!.array.contains(
            "ResourcePolicy cost-balance-policy selects none of the file's workloads: passed through unchanged"), response.text)
        XCTAssertEqual(response.json["manifests"]!.array.filter { $0["kind"] == "ResourcePolicy" }.count, 1)
    }

    func testTwoPoliciesSelectingOneWorkloadAreRefusedAndNothingIsAllocated() async throws {
        try await onPremisesAndServerless()
        let second = Self.seedResourcePolicy.replacingOccurrences(of: "cost-balance-policy", with: "second-policy")
        let response = try await post(Self.seedResourcePolicy + "\n---\n" + second + "\n---\n" + Self.nginx)
        XCTAssertEqual(response.status, 422, response.text)
        XCTAssertTrue(response.text.contains(
            "ResourcePolicy cost-balance-policy and ResourcePolicy second-policy both select Deployment/nginx"), response.text)
        let list = try await broker.call("GET", "/v1/allocations", token: token)
        XCTAssertEqual(list.json["items"]?.array.count ?? list.json["allocations"]?.array.count, 0, list.text)
    }

    /// Karmada's shape, dividing the seed's 6-replica Deployment over two regions.
    func propagation(_ scheduling: String) -> String {
        """
        apiVersion: policy.karmada.io/v1alpha1
        kind: PropagationPolicy
        metadata:
          name: nginx-propagation
        spec:
          resourceSelectors:
            - apiVersion: apps/v1
              kind: Deployment
              name: nginx
          placement:
            clusterAffinity:
              clusterNames:
                - cn-hangzhou
                - cn-beijing
            replicaScheduling:
        \(scheduling)
        """
    }

    func testPropagationPolicyStaticWeightsDivideOneToTwo() async throws {
        try await onPremisesAndServerless()
        // Room 10 in both: by what each can hold it would be 3:3.
        let weights = """
                  replicaDivisionPreference: Weighted
                  replicaSchedulingType: Divided
                  weightPreference:
                    staticWeightList:
                      - targetCluster:
                          clusterNames:
                            - cn-hangzhou
                        weight: 1
                      - targetCluster:
                          clusterNames:
                            - cn-beijing
                        weight: 2
            """
        let response = try await post(Self.nginx.replacingOccurrences(of: "replicas: 5", with: "replicas: 6") + "\n---\n" + propagation(weights))
        XCTAssertEqual(response.status, 201, response.text)
        XCTAssertEqual(response.json["manifestRegions"], [nil, "cn-hangzhou", "cn-beijing"])
        XCTAssertEqual(response.json["manifests"]!.array.dropFirst().map { $0["spec"]!["replicas"]!.int! }, [2, 4])
        XCTAssertEqual(response.json["policies"]?[0]?["governs"], ["Deployment/nginx"])
        // Scale-out keeps the ratio: 9 → 3:6.
        let id = response.json["allocation"]!["id"]!.string!
        let scaled = try await broker.call("PATCH", "/v1/allocations/\(id)", token: token, json: ["replicas": 9])
        XCTAssertEqual(scaled.status, 200, scaled.text)
        XCTAssertEqual(running(scaled.json).filter { $0 == "cn-beijing" }.count, 6)
    }

    func testFleetPropagationPolicyDividesByAvailableReplicas() async throws {
        try await broker.region("cn-hangzhou", primary: true)
        try await broker.region("cn-beijing")
        try await broker.pool("cn-hangzhou", "a10", series: "A10", cpu: 8, memory: 30, capacity: 2)
        try await broker.pool("cn-beijing", "a10", series: "A10", cpu: 8, memory: 30, capacity: 6)
        // The fleet seed's PropagationPolicy, its cluster ids filled in with region ids.
        let policy = """
            apiVersion: policy.one.alibabacloud.com/v1alpha1
            kind: PropagationPolicy
            metadata:
              name: demo-policy
            spec:
              # This field enables inventory-aware elastic scheduling.
              autoScaling:
                ecsProvision: true
              preserveResourcesOnDeletion: false
              conflictResolution: Overwrite
              resourceSelectors:
              - apiVersion: apps/v1
                kind: Deployment
                name: qwen3-8b
                namespace: default
              placement:
                replicaScheduling:
                  replicaSchedulingType: Divided
                  weightPreference:
                    dynamicWeight: AvailableReplicas
                clusterAffinity:
                  clusterNames:
                    - cn-hangzhou
                    - cn-beijing
            """
        let response = try await post(SeedYAML.fleetQwen + "\n---\n" + policy)
        XCTAssertEqual(response.status, 201, response.text)
        XCTAssertEqual(response.json["manifestRegions"], [nil, "cn-hangzhou", "cn-beijing"])
        XCTAssertEqual(response.json["manifests"]!.array.dropFirst().map { $0["spec"]!["replicas"]!.int! }, [1, 3])
        XCTAssertEqual(response.json["warnings"], [
            "PropagationPolicy demo-policy: spec.conflictResolution is not implemented: ignored",
            "PropagationPolicy demo-policy: spec.preserveResourcesOnDeletion is not implemented: ignored",
        ])
    }

    func testCtyunPolicyPinsReplicaCountsToRegionsWithTheUnitsPodLabels() async throws {
        try await broker.region("cn-huadong1", primary: true)
        try await broker.region("cn-huabei2")
        for region in ["cn-huadong1", "cn-huabei2"] {
            try await broker.pool(region, "example", series: "example-model", vendor: "nvidia", cpu: 4, memory: 8, capacity: 10)
        }
        let response = try await post(Self.ctyunPolicy + "\n---\n" + Self.ctyunDeployment)
        XCTAssertEqual(response.status, 201, response.text)
        XCTAssertEqual(response.json["manifestRegions"], [nil, "cn-huabei2", "cn-huadong1"])
        let copies = response.json["manifests"]!.array.dropFirst()
        XCTAssertEqual(copies.map { $0["spec"]!["replicas"]!.int! }, [1, 2])
        let labels = copies.map { $0.value(at: ["spec", "template", "metadata", "labels"])! }
        XCTAssertEqual(labels.map { $0["ctyun.cn/specified-region-id"] }, ["cn-huabei2", "cn-huadong1"])
        XCTAssertEqual(labels.map { $0["ctyun.cn/gpu-model-series"] }, ["example-model", "example-model"])
        XCTAssertEqual(labels.map { $0["ctyun.cn/compute-class"] }, ["gpu", "gpu"])
        XCTAssertEqual(response.json["policies"]?[0]?["governs"], ["Deployment/nginx-gpu-deployment-resourcepolicy"])
    }

    // MARK: stored as the tenant's named policies

    func testAPolicyObjectStoredByNamePlacesLaterPlainRequests() async throws {
        try await onPremisesAndServerless()
        let document = try YAMLBodies.parse(Array(Self.seedResourcePolicy.utf8))
        let stored = try await broker.call("PUT", "/v1/policies/cost-balance-policy", token: token, json: document)
        XCTAssertEqual(stored.status, 201, stored.text)
        XCTAssertEqual(stored.json["selector"], ["app": "nginx", "key1": "value1"])
        XCTAssertEqual(stored.json["warnings"]?.array.count, 1, stored.text)
        let request: JSONValue = [
            "computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 5,
            "labels": ["app": "nginx", "key1": "value1"],
        ]
        let created = try await broker.call("POST", "/v1/allocations", token: token, json: request)
        XCTAssertEqual(created.status, 201, created.text)
        XCTAssertEqual(running(created.json), ["idc-shanghai", "idc-shanghai", "idc-shanghai", "cn-hangzhou", "cn-hangzhou"])
        // A PropagationPolicy selecting by name cannot select plain requests: refused, nothing stored.
        let byName = try YAMLBodies.parse(Array(propagation("          replicaSchedulingType: Divided").utf8))
        let refused = try await broker.call("PUT", "/v1/policies/nginx-propagation", token: token, json: byName)
        XCTAssertEqual(refused.status, 422, refused.text)
        XCTAssertTrue(refused.text.contains("spec.resourceSelectors[0]"), refused.text)
        let missing = try await broker.call("GET", "/v1/policies/nginx-propagation", token: token)
        XCTAssertEqual(missing.status, 404)
    }

    /// The ctyun seed's Policy, its `<RegionID>`s filled in.
    static let ctyunPolicy = """
        apiVersion: scheduling.ctyun.cn/v1
        kind: Policy
        metadata:
          name: multi-vk-gpu-resourcepolicy
          namespace: default
        spec:
          selector: # 在selector中标记Pod,表示带有esx=nginx-gpu-resourcepolicy标签的Pod将遵循此调度策略
            esx: nginx-gpu-resourcepolicy
          units:
          # 优先使用该地域的资源,当该地域资源不足时候,自动切换到其他地域
          - resource: bc # resource类型指定业务资源为bc
            replicas: 1
            schedulerNodeSelector: # 支持通过nodeSelector指定虚拟节点地域
              topology.kubernetes.io/region: cn-huabei2
              spec: uuid
            podLabels:
              ctyun.cn/specified-region-id: cn-huabei2
              ctyun.cn/compute-class: gpu
              ctyun.cn/compute-qos: default
              ctyun.cn/gpu-model-series: example-model  # GPU卡型,请按照实际情况替换
          - resource: bc
            replicas: 2
            nodeSelector: # 支持通过nodeSelector指定虚拟节点地域
              topology.kubernetes.io/region: cn-huadong1
              spec: uuid
            podLabels:
              ctyun.cn/specified-region-id: cn-huadong1
              ctyun.cn/compute-class: gpu
              ctyun.cn/compute-qos: default
              ctyun.cn/gpu-model-series: example-model  # GPU卡型,请按照实际情况替换
        """

    /// The ctyun seed's GPU Deployment, 3 replicas, labelled for the Policy.
    static let ctyunDeployment = """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          labels:
            esx: nginx-gpu-resourcepolicy
          name: nginx-gpu-deployment-resourcepolicy
          namespace: default
        spec:
          replicas: 3
          selector:
            matchLabels:
              esx: nginx-gpu-resourcepolicy
          template:
            metadata:
              labels:
                ctyun.cn/esx: "true"
                esx: nginx-gpu-resourcepolicy
            spec:
              containers:
                - image: 'nginx:stable-alpine'
                  name: nginx
                  resources:
                    limits:
                      cpu: 1
                      memory: 1Gi
                      nvidia.com/gpu: "1"
        """
}
