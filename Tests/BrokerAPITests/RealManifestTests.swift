import BrokerCore
import Foundation
import JSON
import TestSupport
import XCTest

@testable import BrokerAPI

/// Manifests copied unchanged from public repositories (`Tests/Manifests`, each naming its
/// source on its first line), sent as written to the live route. Each one either gets a
/// usable allocation whose per-region documents pass a Kubernetes schema check
/// (`kubernetes-validate --strict`, from the venv `scripts/manifest-validator` makes), or the 4xx
/// listed for it here, whose message names the real reason.
final class RealManifestTests: XCTestCase {
    /// What each file gets: 201, or a status and words its answer must contain.
    static let expected: [String: (status: Int, reason: String?)] = [
            // TPUs, not GPUs: no pool offers them.
            "gke-tpu-training-singlehost.yaml": (422, "asks for google.com/tpu: no pool offers TPUs"),
            // A template, not a manifest: `hf_api_token: {{HF_TOKEN}}` is a YAML mapping used as a key.
            "gke-vllm-llama4-scout.yaml": (400, "YAML document 2, line 97: mapping keys must be scalars"),
            // Only a Service, a PropagationPolicy, Kueue's queues: nothing to place.
            "k8s-examples-vllm-service.yaml": (422, "holds no workload to place"),
            "karmada-nginx-propagationpolicy.yaml": (422, "holds no workload to place (a file of policies alone is stored"),
            // Karmada's member cluster names are read as region ids: no region has them.
            "karmada-nginx-with-propagationpolicy.yaml": (422, "PropagationPolicy nginx-propagation names unknown region 'member1'"),
            // Placeholders the pages ask to replace: refused for them, with the field.
            "ack-one-fleet-propagationpolicy.yaml": (422, "clusterNames[0]: must match a region id"),
            "ctyun-multi-region-policy.yaml": (422, "topology.kubernetes.io/region: must be a region id"),
            // ACK node pool ids select regions by label: no region carries them.
            "ack-resourcepolicy-nodepool-priority.yaml": (409, "2 replicas requested, 0 can be placed now"),
            "kueue-single-clusterqueue-setup.yaml": (422, "holds no workload to place"),
            // Scheduler objects alone (Volcano's and KAI's queues, a Karpenter NodePool): returned, nothing to place.
            "volcano-queue.yaml": (422, "holds no workload to place"),
            "kai-default-queues.yaml": (422, "holds no workload to place"),
            "karpenter-nodepool-general-purpose.yaml": (422, "holds no workload to place"),
            // Karpenter's examples scale from 0: nothing reserved, the copy returned.
            "karpenter-workload-gpu-nvidia-replicas0.yaml": (200, nil),
            "karpenter-workload-neuron-replicas0.yaml": (200, nil),
            // An operator's own kind that runs GPU pods: refused by kind and group, never placed blind.
            "vllm-production-stack-vllmruntime.yaml": (422, "VLLMRuntime of API group production-stack.vllm.ai runs pods"),
            // Helm output with a key twice in one mapping: kubectl refuses it too.
            "opea-chatqna-gaudi-vllm-helm-output.yaml": (400, "duplicated key(s): 'HUGGINGFACEHUB_API_TOKEN'"),
            // Intel Data Center GPUs through DRA: no pool has them.
            "intel-gpu-dra-pod-inline.yaml": (422, "asks for gpu.intel.com: no pool offers intel devices"),
        ]

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Manifests")

    /// The validator: `GPUBROKER_KUBERNETES_VALIDATE`, else the project's venv.
    static var validator: String {
        if let path = ProcessInfo.processInfo.environment["GPUBROKER_KUBERNETES_VALIDATE"] { return path }
        return directory.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/manifest-venv/bin/kubernetes-validate").path
    }

    var broker: TestBroker!
    var token: String!

    override func setUp() async throws {
        broker = try TestBroker()
        token = try await broker.tenant().token
        // Alibaba Cloud ECI GPU types the vendor's examples name, a CPU pool, and GKE's shapes.
        try await broker.region("cn-hangzhou", primary: true)
        try await broker.region("cn-beijing")
        try await broker.region("us-central1")
        // ACS's 8-GPU shape with elastic RDMA (what ACK's SGLang example asks for).
        try await broker.pool("cn-hangzhou", "l20-erdma", series: "L20", interconnect: ["erdma"], gpuMemory: 48, gpus: 8, cpu: 128,
                              memory: 1024, capacity: 4, price: 20, instanceType: "ecs.ebmgn8is.32xlarge")
        for region in ["cn-hangzhou", "cn-beijing"] {
            try await broker.pool(region, "cpu", cpu: 64, memory: 256, capacity: 40, instanceType: "ecs.g7.16xlarge")
            try await broker.pool(region, "t4", series: "T4", gpuMemory: 16, cpu: 8, memory: 31, capacity: 4,
                                  instanceType: "ecs.gn6i-c8g1.2xlarge")
            try await broker.pool(region, "t4-large", series: "T4", gpuMemory: 16, cpu: 16, memory: 62, capacity: 4,
                                  price: 2, instanceType: "ecs.gn6i-c16g1.4xlarge")
            try await broker.pool(region, "p100", series: "P100", gpuMemory: 16, cpu: 8, memory: 60, capacity: 4,
                                  instanceType: "ecs.gn5-c8g1.2xlarge")
            try await broker.pool(region, "v100", series: "V100", gpuMemory: 16, gpus: 4, cpu: 32, memory: 128,
                                  capacity: 4, price: 8, instanceType: "ecs.gn6v-c8g1.8xlarge")
            try await broker.pool(region, "a10", series: "A10", gpuMemory: 24, gpus: 4, cpu: 64, memory: 256,
                                  capacity: 8, price: 6, instanceType: "ecs.gn7i-c32g1.16xlarge")
        }
        try await broker.pool("us-central1", "l4", series: "L4", gpuMemory: 24, gpus: 4, cpu: 48, memory: 192,
                              capacity: 8, price: 4, instanceType: "g2-standard-48")
        try await broker.pool("us-central1", "a100", series: "A100", gpuMemory: 80, gpus: 8, cpu: 96, memory: 1360,
                              capacity: 8, price: 40, instanceType: "a2-ultragpu-8g")
        try await broker.pool("us-central1", "h100", series: "H100", gpuMemory: 80, gpus: 8, cpu: 208, memory: 1872,
                              capacity: 16, price: 90, instanceType: "a3-highgpu-8g")
        try await broker.pool("us-central1", "cpu", cpu: 64, memory: 256, capacity: 40, instanceType: "n2-standard-64")
        // Every vendor's accelerators: AWS's shapes (NVIDIA, Inferentia, Trainium with EFA), MIG-capable
        // NVIDIA pools, Intel Gaudi2 and AMD MI300X.
        try await broker.region("us-east-1")
        for (id, series, gpus, memory, cpu, ram, type, links, partitions) in [
            ("g5", "A10G", 1, 24.0, 8.0, 32.0, "g5.2xlarge", [String](), [String]()),
            ("g5-12x", "A10G", 4, 24, 48, 192, "g5.12xlarge", [], []),
            ("p4d", "A100", 8, 40, 96, 1152, "p4d.24xlarge", ["nvlink", "efa"], ["1g.5gb", "2g.10gb", "3g.20gb", "7g.40gb"]),
            ("p5", "H100", 8, 80, 192, 2048, "p5.48xlarge", ["nvlink", "efa"], ["1g.10gb", "2g.20gb", "3g.40gb", "7g.80gb"]),
            ("gh200", "GH200", 1, 96, 72, 480, "gh200.1x", [], ["1g.12gb", "2g.24gb", "3g.48gb", "7g.96gb"]),
            ("inf2", "Inferentia2", 1, 32, 4, 16, "inf2.xlarge", [], []),
            ("inf2-24x", "Inferentia2", 6, 32, 96, 384, "inf2.24xlarge", [], []),
            ("trn1", "Trainium", 16, 32, 128, 512, "trn1.32xlarge", ["efa"], []),
            ("gaudi2", "Gaudi2", 8, 96, 160, 1024, "gaudi2.8x", [], []),
            ("mi300x", "MI300X", 8, 192, 128, 2048, "mi300x.8x", [], []),
        ] {
            try await broker.pool("us-east-1", id, series: series, interconnect: links, partitions: partitions, gpuMemory: memory,
                                  gpus: gpus, cpu: cpu, memory: ram, capacity: 8, price: Double(gpus) * 2,
                                  instanceType: type)
        }
        try await broker.pool("us-east-1", "cpu", cpu: 64, memory: 256, capacity: 40, price: 3, instanceType: "m7i.16xlarge")
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func testEveryRealManifest() async throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.directory.path).filter { $0.hasSuffix(".yaml") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 30)
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("real-manifests-\(UUID())")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: output) }
        var granted: [String] = []
        for file in files {
            let body = try Array(Data(contentsOf: Self.directory.appendingPathComponent(file)))
            let firstLine = String(decoding: body.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
            XCTAssertTrue(firstLine.hasPrefix("# source: "), "\(file) names its source on its first line")
            let response = try await broker.call(
                "POST", "/v1/allocations/from-manifest", token: token, body: body,
                headers: ["Content-Type": "application/yaml", "Accept": "application/yaml"])
            let outcome = response.status < 300 ? summary(response) : "\(response.status) \(detail(response))"
            print("real manifest \(file): \(outcome)")
            let expected = Self.expected[file]
            XCTAssertEqual(response.status, expected?.status ?? 201, "\(file): \(outcome)")
            if let reason = expected?.reason {
                XCTAssertTrue(detail(response).contains(reason), "\(file): \(outcome)")
            }
            // A 200 placed nothing: its copy is the file as sent (Karpenter's has a typo the schema refuses).
            if response.status == 201 {
                let yaml = output.appendingPathComponent(file)
                try Data(manifestsYAML(response)).write(to: yaml)
                granted.append(yaml.path)
            }
        }
        try validate(granted)
    }

    /// Regions and kinds of the answer, for the log.
    func summary(_ response: TestBroker.Response) -> String {
        let answer = (try? YAMLBodies.parse(response.body)) ?? .null
        let kinds = answer["manifests"]?.arrayValue?.map { $0["kind"]?.stringValue ?? "?" } ?? []
        let regions = answer["manifestRegions"]?.arrayValue?.map { $0.stringValue ?? "-" } ?? []
        let instances = answer["allocations"]?.arrayValue?.flatMap { $0["instances"]?.arrayValue ?? [] } ?? []
        let shapes = Set(instances.map { "\($0["instanceType"]?.stringValue ?? "")" }).sorted()
        let warnings = answer["warnings"]?.arrayValue?.count ?? 0
        return "\(response.status) (\(warnings) warnings) \(zip(kinds, regions).map { "\($0)@\($1)" }.joined(separator: " ")) on \(shapes.joined(separator: ","))"
    }

    func detail(_ response: TestBroker.Response) -> String {
        response.json["detail"]?.stringValue ?? response.text
    }

    /// The answer's manifests as one YAML stream. The validator insists on `metadata.name`,
    /// which the API server makes from `generateName`: it gets a made-up one. It has no
    /// schema for custom kinds (LeaderWorkerSet, RayCluster...): their pod templates, with
    /// what the broker wrote into them, are checked as `PodTemplate`s too (not Knative's,
    /// whose containers may go unnamed, nor KServe's, which are not pod templates).
    func manifestsYAML(_ response: TestBroker.Response) throws -> [UInt8] {
        let answer = try YAMLBodies.parse(response.body)
        var manifests: [JSONValue] = []
        for manifest in answer["manifests"]?.arrayValue ?? [] {
            var m = manifest
            if m["metadata"]?["name"] == nil, let prefix = m["metadata"]?["generateName"]?.stringValue {
                m = m.setting(["metadata", "name"], to: .string(prefix + "x7k2q"))
            }
            manifests.append(m)
            guard m["apiVersion"]?.stringValue?.hasPrefix("serving.knative.dev/") == false,
                let workload = (try? ManifestTranslator.plan([m]))?.workloads.first, workload.together
            else { continue }
            for component in workload.components where component.site.metadataPath.last == "metadata" {
                let template = m.value(at: component.site.metadataPath.dropLast())!
                manifests.append([
                    "apiVersion": "v1", "kind": "PodTemplate",
                    "metadata": ["name": .string("\(m["metadata"]!["name"]!.stringValue!)-\(component.site.name.lowercased())")],
                    "template": template,
                ])
            }
        }
        let documents = try manifests.map { try YAMLBodies.text($0) }
        return Array(documents.joined(separator: "---\n").utf8)
    }

    /// Every granted file's manifests through `kubernetes-validate --strict` in one run.
    func validate(_ paths: [String]) throws {
        guard !paths.isEmpty else { return }
        guard FileManager.default.isExecutableFile(atPath: Self.validator) else {
            XCTFail("\(Self.validator) is missing: run scripts/manifest-validator (scripts/test does) or set GPUBROKER_KUBERNETES_VALIDATE")
            return
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.validator)
        process.arguments = ["--strict", "--no-warn"] + paths
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        print(text)
        XCTAssertEqual(process.terminationStatus, 0, text)
        XCTAssertEqual(text.components(separatedBy: "\n").filter { $0.hasPrefix("ERROR") }, [])
    }
}
