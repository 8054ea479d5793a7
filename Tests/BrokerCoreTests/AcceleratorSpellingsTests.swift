import BrokerCore
import JSON
import XCTest

/// Every line of `AcceleratorSpellings` has a case here (a test fails when one has none),
/// read through the translator against an inventory of every vendor; and what the table
/// does not know is refused by name.
final class AcceleratorSpellingsTests: XCTestCase {
    static let catalog = InstanceCatalog(pools: [
        pool("t4", "T4", memory: 16), pool("a100", "A100", gpus: 8, memory: 80, partitions: ["1g.10gb", "3g.40gb"], links: ["nvlink"]),
        pool("mi300x", "MI300X", gpus: 8, memory: 192), pool("gaudi2", "Gaudi2", gpus: 8, memory: 96),
        pool("max", "Max1550", gpus: 4, memory: 128), pool("inf2", "Inferentia2", gpus: 12, memory: 32, links: ["efa"]),
        pool("tpu", "TPUv5e", gpus: 4, memory: 16), pool("ascend", "Ascend910", gpus: 8, memory: 64, links: ["rdma", "erdma"]),
        pool("g5", "A10G", gpus: 1, memory: 24, type: "g5.2xlarge"),
    ])

    static func pool(
        _ id: String, _ series: String, gpus: Int = 1, memory: Double, partitions: [String] = [], links: [String] = [],
        type: String? = nil
    ) -> Pool {
        Pool(id: id, regionId: "r", computeClass: .gpu, gpuSeries: series, gpuMemoryGiB: memory, gpusPerInstance: gpus,
             gpuPartitions: partitions, gpuInterconnect: links, cpu: 96, memoryGiB: 1024, instanceType: type ?? "\(id).type",
             capacity: 4, pricePerHour: 1)
    }

    func pod(limits: JSONValue = ["cpu": 1], nodeSelector: JSONValue? = nil, annotations: JSONValue = [:], claims: JSONValue? = nil) -> JSONValue {
        var spec: [String: JSONValue] = ["containers": [["name": "c", "image": "x", "resources": ["limits": limits]]]]
        if let nodeSelector { spec["nodeSelector"] = nodeSelector }
        if let claims { spec["resourceClaims"] = claims }
        return ["apiVersion": "v1", "kind": "Pod", "metadata": ["name": "p", "annotations": annotations], "spec": .object(spec)]
    }

    func shapes(_ documents: [JSONValue]) throws -> [ComputeShape] {
        try ManifestTranslator.plan(documents, catalog: Self.catalog).workloads[0].requests.map(\.shape)
    }

    struct Expect {
        var vendor: AcceleratorVendor?
        var count = 1
        var series: [String] = []
        var minMemory: Double?
        var partition: String?
        var link: String?
    }

    func check(_ what: String, _ shape: ComputeShape, _ e: Expect, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(shape.computeClass, .gpu, what, file: file, line: line)
        XCTAssertEqual(shape.gpuVendor, e.vendor, what, file: file, line: line)
        XCTAssertEqual(shape.gpuCount, e.count, what, file: file, line: line)
        XCTAssertEqual(shape.gpuSeries, e.series, what, file: file, line: line)
        XCTAssertEqual(shape.minGPUMemoryGiB.map { ($0 * 1000).rounded() / 1000 }, e.minMemory, what, file: file, line: line)
        XCTAssertEqual(shape.gpuPartition, e.partition, what, file: file, line: line)
        XCTAssertEqual(shape.gpuInterconnect, e.link, what, file: file, line: line)
    }

    func testEveryExtendedResource() throws {
        // name in the table → (the resource as a pod writes it, its amount, what it asks for)
        let cases: [String: (String, JSONValue, Expect)] = [
            "nvidia.com/gpu": ("nvidia.com/gpu", 2, Expect(vendor: .nvidia, count: 2)),
            "nvidia.com/gpu.shared": ("nvidia.com/gpu.shared", 3, Expect(vendor: .nvidia)),
            "nvidia.com/mig-": ("nvidia.com/mig-3g.40gb", 2, Expect(vendor: .nvidia, partition: "3g.40gb")),
            "nvidia.com/gpumem": ("nvidia.com/gpumem", 3000, Expect(vendor: .nvidia, minMemory: 2.93)),
            "nvidia.com/gpucores": ("nvidia.com/gpucores", 30, Expect(vendor: .nvidia)),
            "amd.com/gpu": ("amd.com/gpu", 8, Expect(vendor: .amd, count: 8)),
            "habana.ai/gaudi": ("habana.ai/gaudi", 8, Expect(vendor: .intel, count: 8, series: ["Gaudi2"])),
            "intel.com/gaudi": ("intel.com/gaudi", 1, Expect(vendor: .intel, series: ["Gaudi2"])),
            "gpu.intel.com/i915": ("gpu.intel.com/i915", 1, Expect(vendor: .intel, series: ["Max1550"])),
            "aws.amazon.com/neuron": ("aws.amazon.com/neuron", 6, Expect(vendor: .aws, count: 6)),
            "aws.amazon.com/neurondevice": ("aws.amazon.com/neurondevice", 1, Expect(vendor: .aws)),
            "aws.amazon.com/neuroncore": ("aws.amazon.com/neuroncore", 3, Expect(vendor: .aws, count: 2)),
            "google.com/tpu": ("google.com/tpu", 4, Expect(vendor: .google, count: 4)),
            "huawei.com/Ascend910": ("huawei.com/Ascend910", 8, Expect(vendor: .huawei, count: 8)),
            // GiB, as the plugin counts by default; the MiB rule is tested below.
            "aliyun.com/gpu-mem": ("aliyun.com/gpu-mem", 8, Expect(vendor: .nvidia, minMemory: 8)),
            "aliyun.com/gpu-count": ("aliyun.com/gpu-count", 2, Expect(vendor: .nvidia, count: 2)),
            "aliyun.com/gpu-core.percentage": ("aliyun.com/gpu-core.percentage", 50, Expect(vendor: .nvidia)),
            "vpc.amazonaws.com/efa": ("vpc.amazonaws.com/efa", 1, Expect(vendor: .aws, link: "efa")),
            "rdma/": ("rdma/hca_shared_devices_a", 1, Expect(vendor: .huawei, count: 8, link: "rdma")),
            "aliyun/erdma": ("aliyun/erdma", 1, Expect(vendor: .huawei, count: 8, link: "erdma")),
        ]
        for spelling in AcceleratorSpellings.resources {
            guard let (name, amount, expect) = cases[spelling.name] else {
                XCTFail("\(spelling.name) has no test case")
                continue
            }
            // Links come with the accelerator they connect.
            var limits: [String: JSONValue] = [name: amount]
            if case .interconnect = spelling.count {
                limits[expect.vendor == .aws ? "aws.amazon.com/neuron" : "huawei.com/Ascend910"] = expect.vendor == .aws ? 1 : 8
            }
            check(name, try shapes([pod(limits: .object(limits))])[0], expect)
        }
    }

    func testGPUMemoryAboveTheFloorIsMebibytes() throws {
        // The gpushare plugin deployed with --memory-unit=MiB: 8138 is 7.95 GiB, not 8138 GiB.
        check("MiB", try shapes([pod(limits: ["aliyun.com/gpu-mem": 8138])])[0], Expect(vendor: .nvidia, minMemory: 7.947))
        check("GiB", try shapes([pod(limits: ["aliyun.com/gpu-mem": 1024])])[0], Expect(vendor: .nvidia, minMemory: 1024))
    }

    func testEveryNodeSelector() throws {
        // key → (value, the models tried first, the vendor it implies, min memory)
        let cases: [String: (String, [String], AcceleratorVendor?, Double?)] = [
            "cloud.google.com/gke-accelerator": ("nvidia-tesla-t4", ["T4"], .nvidia, nil),
            "cloud.google.com/gke-tpu-accelerator": ("tpu-v5-lite-podslice", [], .google, nil),
            "cloud.google.com/gke-tpu-topology": ("2x4", [], .google, nil),
            "cloud.google.com/gke-gpu-sharing-strategy": ("time-sharing", [], .nvidia, nil),
            "cloud.google.com/gke-max-shared-clients-per-gpu": ("2", [], .nvidia, nil),
            "cloud.google.com/gke-gpu-driver-version": ("latest", [], .nvidia, nil),
            "nvidia.com/gpu.product": ("NVIDIA-A100-SXM4-80GB", ["A100"], .nvidia, nil),
            "nvidia.com/gpu.family": ("turing", ["T4"], .nvidia, nil),
            "nvidia.com/gpu.memory": ("40960", [], .nvidia, 40),
            "nvidia.com/gpu.present": ("true", [], .nvidia, nil),
            "nvidia.com/gpu.deploy.operands": ("true", [], .nvidia, nil),
            "nvidia.com/mig.capable": ("true", [], .nvidia, nil),
            "feature.node.kubernetes.io/pci-10de.present": ("true", [], .nvidia, nil),
            "gpu.nvidia.com/class": ("A100_NVLINK_80GB", ["A100"], .nvidia, nil),
            "aliyun.accelerator/nvidia_name": ("Tesla-T4", ["T4"], .nvidia, nil),
            "accelerator": ("nvidia-tesla-t4", ["T4"], .nvidia, nil),
            "karpenter.k8s.aws/instance-gpu-name": ("a10g", ["A10G"], .nvidia, nil),
            "karpenter.k8s.aws/instance-gpu-manufacturer": ("nvidia", [], .nvidia, nil),
            "karpenter.k8s.aws/instance-gpu-memory": ("24576", [], .nvidia, 24),
            "karpenter.k8s.aws/instance-gpu-count": ("1", [], .nvidia, nil),
            "karpenter.k8s.aws/instance-accelerator-name": ("inferentia2", ["Inferentia2"], .aws, nil),
            "karpenter.k8s.aws/instance-accelerator-manufacturer": ("aws", [], .aws, nil),
            "karpenter.k8s.aws/instance-family": ("g5", ["A10G"], .nvidia, nil),
            "node.kubernetes.io/instance-type": ("p4d.24xlarge", ["A100"], .nvidia, nil),
            "beta.kubernetes.io/instance-type": ("g5.2xlarge", [], .nvidia, nil),
        ]
        for spelling in AcceleratorSpellings.selectors {
            guard let (value, preferred, vendor, memory) = cases[spelling.key] else {
                XCTFail("\(spelling.key) has no test case")
                continue
            }
            // With a device of the vendor the selector implies (TPUs: the TPU resource).
            let resource = vendor == .google ? "google.com/tpu" : vendor == .aws ? "aws.amazon.com/neuron" : "nvidia.com/gpu"
            let shapes = try shapes([pod(limits: [resource: 1], nodeSelector: [spelling.key: .string(value)])])
            XCTAssertEqual(shapes[0].gpuVendor, vendor, spelling.key)
            XCTAssertEqual(shapes[0].minGPUMemoryGiB, memory, spelling.key)
            if spelling.key == "beta.kubernetes.io/instance-type" {
                XCTAssertEqual(shapes.map(\.instanceType), ["g5.2xlarge", nil], "an instance type the inventory has is tried first")
            } else {
                XCTAssertEqual(shapes.count > 1 ? shapes[0].gpuSeries : [], preferred, spelling.key)
            }
        }
    }

    func testEveryDeviceClassAndAnnotation() throws {
        let cases: [String: Expect] = [
            "gpu.nvidia.com": Expect(vendor: .nvidia, count: 2), "mig.nvidia.com": Expect(vendor: .nvidia, count: 2),
            "gpu.amd.com": Expect(vendor: .amd, count: 2), "gpu.intel.com": Expect(vendor: .intel, count: 2, series: ["Max1550"]),
            "gaudi.intel.com": Expect(vendor: .intel, count: 2, series: ["Gaudi2"]),
            "neuron.aws.com": Expect(vendor: .aws, count: 2),
        ]
        for spelling in AcceleratorSpellings.deviceClasses {
            guard let expect = cases[spelling.name] else {
                XCTFail("\(spelling.name) has no test case")
                continue
            }
            let template: JSONValue = ["apiVersion": "resource.k8s.io/v1beta1", "kind": "ResourceClaimTemplate", "metadata": ["name": "gpus"],
                "spec": ["spec": ["devices": ["requests": [["name": "g", "deviceClassName": .string(spelling.name), "count": 2]]]]]]
            let claim = pod(claims: [["name": "g", "resourceClaimTemplateName": "gpus"]])
            check(spelling.name, try shapes([template, claim])[0], expect)
        }
        // resource.k8s.io/v1 puts the request under `exactly`; `allocationMode: All` is one instance's devices.
        let v1: JSONValue = ["apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim", "metadata": ["name": "all"],
            "spec": ["devices": ["requests": [["name": "g", "exactly": ["deviceClassName": "gpu.nvidia.com", "allocationMode": "All"]]]]]]
        check("v1", try shapes([v1, pod(claims: [["name": "g", "resourceClaimName": "all"]])])[0], Expect(vendor: .nvidia))
        // MIG partitions named by a CEL selector: 1g + 1g + 2g + 3g share one device's 7 slices.
        let mig: JSONValue = ["apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate", "metadata": ["name": "mig"],
            "spec": ["spec": ["devices": ["requests": .array(["1g.10gb", "1g.10gb", "2g.20gb", "3g.40gb"].map { profile in
                ["name": .string(profile), "exactly": ["deviceClassName": "mig.nvidia.com",
                 "selectors": [["cel": ["expression": .string("device.attributes['gpu.nvidia.com'].profile == '\(profile)'")]]]]]
            })]]]]
        check("mig", try shapes([mig, pod(claims: [["name": "m", "resourceClaimTemplateName": "mig"]])])[0],
              Expect(vendor: .nvidia, partition: "1g.10gb"))
        // A CEL selector on the product name requires that model.
        let a100: JSONValue = ["apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate", "metadata": ["name": "a100"],
            "spec": ["spec": ["devices": ["requests": [["name": "g", "exactly": ["deviceClassName": "gpu.nvidia.com",
                "selectors": [["cel": ["expression": "device.attributes['gpu.nvidia.com'].productName.lowerAscii().matches('^.*a100.*$')"]]]]]]]]]]
        check("productName", try shapes([a100, pod(claims: [["name": "g", "resourceClaimTemplateName": "a100"]])])[0],
              Expect(vendor: .nvidia, series: ["A100"]))

        let annotations: [String: (String, Expect)] = [
            "gpu-fraction": ("0.5", Expect(vendor: .nvidia)), "gpu-memory": ("20000", Expect(vendor: .nvidia, minMemory: 19.531)),
        ]
        for spelling in AcceleratorSpellings.annotations {
            guard let (value, expect) = annotations[spelling.key] else {
                XCTFail("\(spelling.key) has no test case")
                continue
            }
            check(spelling.key, try shapes([pod(annotations: [spelling.key: .string(value)])])[0], expect)
        }
    }

    func testWhatTheTableDoesNotKnowIsRefusedByName() {
        let cases: [(JSONValue, String, String)] = [
            (pod(limits: ["example.com/fpga": 1]), "spec.containers[0].resources.limits.example.com/fpga", "asks for example.com/fpga, an extended resource the broker does not know"),
            (pod(limits: ["nvidia.com/gpu": 1], nodeSelector: ["example.com/gpu-kind": "fast"]), "spec.nodeSelector.example.com/gpu-kind", "selects nodes by example.com/gpu-kind, a label the broker does not know"),
            (pod(claims: [["name": "g", "resourceClaimTemplateName": "elsewhere"]]), "spec.resourceClaims[0]", "ResourceClaimTemplate elsewhere that is not in this file"),
            (pod(limits: ["nvidia.com/gpu": 1, "amd.com/gpu": 1]), "spec.containers.resources", "devices of two vendors"),
            (pod(limits: ["nvidia.com/gpu": 1], nodeSelector: ["karpenter.k8s.aws/instance-accelerator-name": "inferentia2"]), "spec.containers.resources", "selects aws nodes"),
        ]
        for (document, field, message) in cases {
            XCTAssertThrowsError(try ManifestTranslator.plan([document], catalog: Self.catalog), message) { error in
                let errors = (error as? ValidationFailure)?.errors ?? []
                XCTAssertEqual(errors.map(\.field), [field], message)
                XCTAssertTrue(errors.first?.message.contains(message) == true, "\(errors)")
            }
        }
        let template: JSONValue = ["apiVersion": "resource.k8s.io/v1beta1", "kind": "ResourceClaimTemplate", "metadata": ["name": "t"],
            "spec": ["spec": ["devices": ["requests": [["name": "g", "deviceClassName": "fpga.example.com"]]]]]]
        XCTAssertThrowsError(try ManifestTranslator.plan([template, pod(claims: [["name": "g", "resourceClaimTemplateName": "t"]])], catalog: Self.catalog)) {
            XCTAssertTrue("\($0)".contains("devices of class fpga.example.com, which the broker does not know"), "\($0)")
        }
    }
}
