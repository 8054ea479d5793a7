import Foundation

/// How a quantity of an extended resource counts accelerators.
public enum DeviceCount: Sendable, Equatable {
    /// Whole devices.
    case devices
    /// Cores of which a device has `perDevice`: the devices needed round up.
    case cores(perDevice: Int)
    /// Partitions of one profile, named after the prefix (`nvidia.com/mig-3g.40gb`).
    case partitions
    /// Shares of one device, however many are asked for (time-slicing).
    case shares
    /// A percentage of one device's compute.
    case percent
    /// Device memory, per pod, in GiB — or in MiB when the value is above `mebibyteFloor`.
    /// Rule: the Alibaba gpushare plugin counts GiB by default and MiB when deployed with
    /// `--memory-unit=MiB`; no device has more than 1024 GiB, so a larger number is MiB.
    case memoryGiBOrMiB
    /// Device memory per device in MiB (HAMi).
    case memoryMiBPerDevice
    /// Not an accelerator: a network link the pool must offer (`efa`, `rdma`).
    case interconnect(String)

    public static let mebibyteFloor = 1024.0
}

/// One extended resource name (or prefix) the world uses for accelerators.
public struct ResourceSpelling: Sendable, Equatable {
    public var name: String
    /// `name` is a prefix (`nvidia.com/mig-`): the rest of the resource name is the profile.
    public var isPrefix = false
    public var vendor: AcceleratorVendor?
    /// Only models of this family (`AcceleratorModel.family`) carry it.
    public var family: String?
    public var count: DeviceCount
    /// What it asks for, for messages ("no pool offers TPUs").
    public var noun: String
    public var source: String
}

/// What a node label (in `nodeSelector` or a required node affinity) says about the node.
public enum SelectorMeaning: Sendable, Equatable {
    /// The accelerator model, in any spelling `AcceleratorModels.model(in:)` reads.
    case model
    /// GPU Feature Discovery's architecture (`ampere`): any model of it.
    case family
    /// Only that the node has this vendor's devices (`nvidia.com/gpu.present`).
    case vendor
    /// An instance type (`g5.2xlarge`, `ecs.gn7i-c8g1.2xlarge`).
    case instanceType
    /// An EC2 instance family (`g5`, `p4d`, `inf2`): its model.
    case instanceFamily
    /// Device memory in MiB (at least that much).
    case memoryMiB
    /// Known, and says nothing the broker places by (driver versions, sharing strategy).
    case ignored
}

public struct SelectorSpelling: Sendable, Equatable {
    public var key: String
    public var meaning: SelectorMeaning
    public var vendor: AcceleratorVendor?
    public var source: String
}

/// A Dynamic Resource Allocation device class (`deviceClassName` of a claim's request).
public struct DeviceClassSpelling: Sendable, Equatable {
    public var name: String
    public var vendor: AcceleratorVendor
    public var family: String?
    public var count: DeviceCount
    public var source: String
}

/// Pod annotations that ask for a share of a device (the KAI / Run:ai scheduler's).
public struct AnnotationSpelling: Sendable, Equatable {
    public var key: String
    public var vendor: AcceleratorVendor
    public var count: DeviceCount
    public var source: String
}

/// Every spelling of an accelerator the broker reads, one line each with its source.
/// Adding one is a line here and a test in `AcceleratorSpellingsTests`. Anything else a
/// workload asks for in these places (an extended resource, a device class, a model
/// selector) is refused by name, never ignored.
public enum AcceleratorSpellings {
    public static let resources: [ResourceSpelling] = [
        .init(name: "nvidia.com/gpu", vendor: .nvidia, count: .devices, noun: "NVIDIA GPUs",
              source: "https://github.com/NVIDIA/k8s-device-plugin"),
        .init(name: "nvidia.com/gpu.shared", vendor: .nvidia, count: .shares, noun: "NVIDIA GPUs",
              source: "https://github.com/NVIDIA/k8s-device-plugin#shared-access-to-gpus (renameByDefault)"),
        .init(name: "nvidia.com/mig-", isPrefix: true, vendor: .nvidia, count: .partitions, noun: "NVIDIA MIG partitions",
              source: "https://docs.nvidia.com/datacenter/cloud-native/gpu-operator/latest/gpu-operator-mig.html (mixed strategy)"),
        .init(name: "nvidia.com/gpumem", vendor: .nvidia, count: .memoryMiBPerDevice, noun: "NVIDIA GPUs",
              source: "https://github.com/Project-HAMi/HAMi#quick-start"),
        .init(name: "nvidia.com/gpucores", vendor: .nvidia, count: .percent, noun: "NVIDIA GPUs",
              source: "https://github.com/Project-HAMi/HAMi#quick-start"),
        .init(name: "amd.com/gpu", vendor: .amd, count: .devices, noun: "AMD GPUs",
              source: "https://github.com/ROCm/k8s-device-plugin"),
        .init(name: "habana.ai/gaudi", vendor: .intel, family: "gaudi", count: .devices, noun: "Intel Gaudi accelerators",
              source: "https://docs.habana.ai/en/latest/Orchestration/Gaudi_Kubernetes/Device_Plugin_for_Kubernetes.html"),
        // DRA drivers can publish their devices under an extended resource name too (DeviceClass `extendedResourceName`).
        .init(name: "intel.com/gaudi", vendor: .intel, family: "gaudi", count: .devices, noun: "Intel Gaudi accelerators",
              source: "https://github.com/intel/intel-resource-drivers-for-kubernetes/blob/main/deployments/gaudi/examples/deployment-extended-resources.yaml"),
        .init(name: "gpu.intel.com/i915", vendor: .intel, family: "max", count: .devices, noun: "Intel Data Center GPUs",
              source: "https://github.com/intel/intel-device-plugins-for-kubernetes/tree/main/cmd/gpu_plugin"),
        .init(name: "aws.amazon.com/neuron", vendor: .aws, count: .devices, noun: "AWS Neuron devices",
              source: "https://awsdocs-neuron.readthedocs-hosted.com/en/latest/containers/kubernetes-getting-started.html"),
        .init(name: "aws.amazon.com/neurondevice", vendor: .aws, count: .devices, noun: "AWS Neuron devices",
              source: "https://awsdocs-neuron.readthedocs-hosted.com/en/latest/containers/kubernetes-getting-started.html"),
        // NeuronCore-v2: 2 per Inferentia2 / Trainium device (Trainium2 has 8: rounding up asks for more, never fewer).
        .init(name: "aws.amazon.com/neuroncore", vendor: .aws, count: .cores(perDevice: 2), noun: "AWS Neuron devices",
              source: "https://awsdocs-neuron.readthedocs-hosted.com/en/latest/containers/kubernetes-getting-started.html"),
        .init(name: "google.com/tpu", vendor: .google, count: .devices, noun: "TPUs",
              source: "https://cloud.google.com/kubernetes-engine/docs/how-to/tpus"),
        .init(name: "huawei.com/Ascend910", vendor: .huawei, count: .devices, noun: "Huawei Ascend NPUs",
              source: "https://gitee.com/ascend/ascend-device-plugin"),
        .init(name: "aliyun.com/gpu-mem", vendor: .nvidia, count: .memoryGiBOrMiB, noun: "NVIDIA GPUs",
              source: "https://github.com/AliyunContainerService/gpushare-scheduler-extender/blob/master/docs/userguide.md"),
        .init(name: "aliyun.com/gpu-count", vendor: .nvidia, count: .devices, noun: "NVIDIA GPUs",
              source: "https://www.alibabacloud.com/help/en/ack/ack-managed-and-ack-dedicated/user-guide/gpu-sharing"),
        .init(name: "aliyun.com/gpu-core.percentage", vendor: .nvidia, count: .percent, noun: "NVIDIA GPUs",
              source: "https://www.alibabacloud.com/help/en/ack/ack-managed-and-ack-dedicated/user-guide/gpu-sharing"),
        .init(name: "vpc.amazonaws.com/efa", count: .interconnect("efa"), noun: "EFA network interfaces",
              source: "https://docs.aws.amazon.com/eks/latest/userguide/node-efa.html"),
        .init(name: "rdma/", isPrefix: true, count: .interconnect("rdma"), noun: "RDMA devices",
              source: "https://github.com/Mellanox/k8s-rdma-shared-dev-plugin"),
        .init(name: "aliyun/erdma", count: .interconnect("erdma"), noun: "elastic RDMA interfaces",
              source: "https://www.alibabacloud.com/help/en/ack/ack-managed-and-ack-dedicated/user-guide/use-erdma-to-accelerate-container-networking"),
    ]

    public static let selectors: [SelectorSpelling] = [
        .init(key: "cloud.google.com/gke-accelerator", meaning: .model, vendor: nil,
              source: "https://cloud.google.com/kubernetes-engine/docs/how-to/gpus"),
        .init(key: "cloud.google.com/gke-tpu-accelerator", meaning: .model, vendor: .google,
              source: "https://cloud.google.com/kubernetes-engine/docs/how-to/tpus"),
        .init(key: "cloud.google.com/gke-tpu-topology", meaning: .ignored, vendor: .google,
              source: "https://cloud.google.com/kubernetes-engine/docs/how-to/tpus"),
        .init(key: "cloud.google.com/gke-gpu-sharing-strategy", meaning: .ignored, vendor: .nvidia,
              source: "https://cloud.google.com/kubernetes-engine/docs/how-to/timesharing-gpus"),
        .init(key: "cloud.google.com/gke-max-shared-clients-per-gpu", meaning: .ignored, vendor: .nvidia,
              source: "https://cloud.google.com/kubernetes-engine/docs/how-to/timesharing-gpus"),
        .init(key: "cloud.google.com/gke-gpu-driver-version", meaning: .ignored, vendor: .nvidia,
              source: "https://cloud.google.com/kubernetes-engine/docs/how-to/gpus"),
        .init(key: "nvidia.com/gpu.product", meaning: .model, vendor: .nvidia,
              source: "https://github.com/NVIDIA/k8s-device-plugin/tree/main/docs/gpu-feature-discovery"),
        .init(key: "nvidia.com/gpu.family", meaning: .family, vendor: .nvidia,
              source: "https://github.com/NVIDIA/k8s-device-plugin/tree/main/docs/gpu-feature-discovery"),
        .init(key: "nvidia.com/gpu.memory", meaning: .memoryMiB, vendor: .nvidia,
              source: "https://github.com/NVIDIA/k8s-device-plugin/tree/main/docs/gpu-feature-discovery"),
        .init(key: "nvidia.com/gpu.present", meaning: .vendor, vendor: .nvidia,
              source: "https://github.com/NVIDIA/gpu-operator (node label set by the operator)"),
        .init(key: "nvidia.com/gpu.deploy.operands", meaning: .vendor, vendor: .nvidia,
              source: "https://docs.nvidia.com/datacenter/cloud-native/gpu-operator/latest/gpu-operator-mig.html"),
        .init(key: "nvidia.com/mig.capable", meaning: .vendor, vendor: .nvidia,
              source: "https://github.com/NVIDIA/k8s-device-plugin/tree/main/docs/gpu-feature-discovery"),
        .init(key: "feature.node.kubernetes.io/pci-10de.present", meaning: .vendor, vendor: .nvidia,
              source: "https://kubernetes-sigs.github.io/node-feature-discovery/stable/usage/features.html (PCI vendor 10de)"),
        .init(key: "gpu.nvidia.com/class", meaning: .model, vendor: .nvidia,
              source: "https://docs.coreweave.com/docs/products/cks/nodes/node-types (A100_NVLINK_80GB...)"),
        .init(key: "aliyun.accelerator/nvidia_name", meaning: .model, vendor: .nvidia,
              source: "https://www.alibabacloud.com/help/en/ack/ack-managed-and-ack-dedicated/user-guide/labels-for-enabling-gpu-scheduling-policies"),
        .init(key: "accelerator", meaning: .model, vendor: nil,
              source: "https://kubernetes.io/docs/tasks/manage-gpus/scheduling-gpus/#clusters-containing-different-types-of-gpus"),
        .init(key: "karpenter.k8s.aws/instance-gpu-name", meaning: .model, vendor: nil,
              source: "https://karpenter.sh/docs/reference/instance-types/"),
        .init(key: "karpenter.k8s.aws/instance-gpu-manufacturer", meaning: .vendor, vendor: nil,
              source: "https://karpenter.sh/docs/reference/instance-types/"),
        .init(key: "karpenter.k8s.aws/instance-gpu-memory", meaning: .memoryMiB, vendor: nil,
              source: "https://karpenter.sh/docs/reference/instance-types/"),
        .init(key: "karpenter.k8s.aws/instance-gpu-count", meaning: .ignored, vendor: nil,
              source: "https://karpenter.sh/docs/reference/instance-types/"),
        .init(key: "karpenter.k8s.aws/instance-accelerator-name", meaning: .model, vendor: nil,
              source: "https://karpenter.sh/docs/reference/instance-types/"),
        .init(key: "karpenter.k8s.aws/instance-accelerator-manufacturer", meaning: .vendor, vendor: nil,
              source: "https://karpenter.sh/docs/reference/instance-types/"),
        .init(key: "karpenter.k8s.aws/instance-family", meaning: .instanceFamily, vendor: nil,
              source: "https://karpenter.sh/docs/reference/well-known-labels/"),
        .init(key: "node.kubernetes.io/instance-type", meaning: .instanceType, vendor: nil,
              source: "https://kubernetes.io/docs/reference/labels-annotations-taints/#nodekubernetesioinstance-type"),
        .init(key: "beta.kubernetes.io/instance-type", meaning: .instanceType, vendor: nil,
              source: "https://kubernetes.io/docs/reference/labels-annotations-taints/#beta-kubernetes-io-instance-type"),
    ]

    public static let deviceClasses: [DeviceClassSpelling] = [
        .init(name: "gpu.nvidia.com", vendor: .nvidia, count: .devices,
              source: "https://github.com/NVIDIA/k8s-dra-driver-gpu"),
        .init(name: "mig.nvidia.com", vendor: .nvidia, count: .partitions,
              source: "https://github.com/NVIDIA/k8s-dra-driver-gpu"),
        .init(name: "gpu.amd.com", vendor: .amd, count: .devices,
              source: "https://github.com/ROCm/k8s-gpu-dra-driver"),
        .init(name: "gpu.intel.com", vendor: .intel, family: "max", count: .devices,
              source: "https://github.com/intel/intel-resource-drivers-for-kubernetes"),
        .init(name: "gaudi.intel.com", vendor: .intel, family: "gaudi", count: .devices,
              source: "https://github.com/intel/intel-resource-drivers-for-kubernetes/tree/main/deployments/gaudi"),
        .init(name: "neuron.aws.com", vendor: .aws, count: .devices,
              source: "https://awsdocs-neuron.readthedocs-hosted.com/en/latest/containers/neuron-dra.html"),
    ]

    public static let annotations: [AnnotationSpelling] = [
        .init(key: "gpu-fraction", vendor: .nvidia, count: .shares,
              source: "https://github.com/NVIDIA/KAI-Scheduler/tree/main/docs/gpu-sharing"),
        .init(key: "gpu-memory", vendor: .nvidia, count: .memoryMiBPerDevice,
              source: "https://github.com/NVIDIA/KAI-Scheduler/tree/main/docs/gpu-sharing"),
    ]

    /// EC2 instance families with accelerators, for `karpenter.k8s.aws/instance-family` and
    /// instance types (`g5.2xlarge`): the model each carries.
    public static let instanceFamilies: [String: String] = [
        "g4dn": "T4", "g5": "A10G", "g6": "L4", "g6e": "L40S", "p3": "V100", "p4d": "A100", "p4de": "A100",
        "p5": "H100", "p5e": "H200", "p5en": "H200", "inf1": "Inferentia", "inf2": "Inferentia2",
        "trn1": "Trainium", "trn1n": "Trainium", "trn2": "Trainium2", "dl1": "Gaudi", "dl2q": "Gaudi2",
    ]

    /// Resource names Kubernetes itself defines: never accelerators.
    public static func isNative(_ name: String) -> Bool {
        ["cpu", "memory", "ephemeral-storage", "storage", "pods"].contains(name) || name.hasPrefix("hugepages-")
    }

    public static func resource(_ name: String) -> ResourceSpelling? {
        resources.first { $0.isPrefix ? name.hasPrefix($0.name) && name.count > $0.name.count : $0.name == name }
    }

    public static func selector(_ key: String) -> SelectorSpelling? { selectors.first { $0.key == key } }

    /// A node label key that speaks of accelerators: one the table must know.
    public static func looksLikeAcceleratorKey(_ key: String) -> Bool {
        let lower = key.lowercased()
        let domain = lower.split(separator: "/").first.map(String.init) ?? ""
        return ["gpu", "accelerator", "neuron", "gaudi", "habana", "tpu", "mig"].contains { lower.contains($0) }
            || ["nvidia.com", "amd.com", "habana.ai"].contains(domain)
    }
}
