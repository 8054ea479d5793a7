import Foundation

/// Who makes a pool's accelerator. A request for one vendor's device is never granted
/// another vendor's: each vendor's device plugin advertises its own resource names.
public enum AcceleratorVendor: String, Codable, Sendable, CaseIterable {
    case nvidia, amd, intel, aws, google, huawei
    /// A model the broker does not know, named by an admin: never granted for a vendor's
    /// resource name, only to requests that name the model.
    case other
}

/// One accelerator model the broker knows: its vendor and family (what a model selector
/// may name instead of the model).
public struct AcceleratorModel: Sendable, Equatable {
    public var name: String
    public var vendor: AcceleratorVendor
    /// NVIDIA architecture (`ampere`, `hopper`...) as GPU Feature Discovery's
    /// `nvidia.com/gpu.family` spells it; the product line for the others (`gaudi`,
    /// `inferentia`, `trainium`, `instinct`, `tpu`, `ascend`).
    public var family: String
}

/// The models the broker recognises, the vendor of a pool inferred from them (migration
/// 14 infers the same for pools reported before vendors existed), and how a label value
/// names one (`NVIDIA-A100-SXM4-80GB`, `nvidia-tesla-t4`, `a10g`, `A100_NVLINK_80GB`).
public enum AcceleratorModels {
    public static let all: [AcceleratorModel] = {
        func line(_ vendor: AcceleratorVendor, _ family: String, _ names: String) -> [AcceleratorModel] {
            names.split(separator: " ").map { AcceleratorModel(name: String($0), vendor: vendor, family: family) }
        }
        return line(.nvidia, "kepler", "K80") + line(.nvidia, "pascal", "P4 P40 P100")
            + line(.nvidia, "volta", "V100") + line(.nvidia, "turing", "T4")
            + line(.nvidia, "ampere", "A2 A10 A10G A16 A30 A40 A100 A800 RTXA6000")
            + line(.nvidia, "ada-lovelace", "L4 L20 L40 L40S RTX6000ADA")
            + line(.nvidia, "hopper", "H100 H200 H800 H20 GH200")
            + line(.nvidia, "blackwell", "B200 B300 GB200")
            + line(.amd, "instinct", "MI210 MI250 MI250X MI300X MI300A MI325X MI355X")
            + line(.intel, "gaudi", "Gaudi Gaudi2 Gaudi3")
            + line(.intel, "max", "Max1100 Max1550")
            + line(.aws, "inferentia", "Inferentia Inferentia2")
            + line(.aws, "trainium", "Trainium Trainium2")
            + line(.google, "tpu", "TPUv4 TPUv5e TPUv5p TPUv6e")
            + line(.huawei, "ascend", "Ascend910 Ascend910B Ascend310P")
    }()

    private static let byName: [String: AcceleratorModel] = Dictionary(
        all.map { ($0.name.uppercased(), $0) }, uniquingKeysWith: { first, _ in first })

    public static func model(named name: String) -> AcceleratorModel? { byName[name.uppercased()] }

    /// The vendor of a model by name; nil when the broker does not know it.
    public static func vendor(of model: String) -> AcceleratorVendor? { byName[model.uppercased()]?.vendor }

    /// Words in label values that say nothing about the model.
    private static let noise: Set<String> = ["NVIDIA", "TESLA", "AMD", "INSTINCT", "INTEL", "HABANA", "AWS", "GOOGLE"]

    /// The model a label value names, in `known`'s spelling when one matches (else the
    /// broker's table's): its words (split at `-`, `_`, space, `.`) are tried alone and
    /// joined with the next one (`rtx-a6000`), memory sizes and form factors skipped.
    public static func model(in value: String, known: [String] = []) -> String? {
        let words = value.uppercased().split(whereSeparator: { "-_ ./".contains($0) }).map(String.init)
            .filter { !noise.contains($0) }
        var candidates: [String] = []
        for (i, word) in words.enumerated() {
            if i + 1 < words.count { candidates.append(word + words[i + 1]) }
            candidates.append(word)
        }
        for candidate in candidates {
            if let match = known.first(where: { $0.uppercased() == candidate }) { return match }
        }
        return candidates.lazy.compactMap { byName[$0]?.name }.first
    }

    /// Every known model of a family, for `nvidia.com/gpu.family`.
    public static func models(ofFamily family: String) -> [String] {
        all.filter { $0.family == family.lowercased() }.map(\.name)
    }
}
