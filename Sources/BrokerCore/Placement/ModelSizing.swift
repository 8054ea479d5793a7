import Foundation
import JSON

/// GPU memory a model needs under the sizing rule.
public struct SizingResult: Codable, Sendable, Equatable {
    public var weightsGiB: Double
    public var kvCacheGiB: Double
    /// (weights + KV cache) ÷ usable fraction: GPU memory per replica, over all its GPUs.
    public var requiredGiB: Double
}

/// The sizing rule: weights = parameters × bytes per parameter; plus a KV cache
/// (given, or 2 × layers × hidden size × context × batch × bytes per parameter when
/// layers, hidden size and context length are all known); divided by a usable
/// fraction (default 0.9).
public enum ModelSizing {
    public static let gib = 1_073_741_824.0
    public static let defaultUsableFraction = 0.9
    /// Largest parameter count accepted (1000T).
    public static let maxParameters = 1e15

    /// "7B", "13.5B", "500M", "1.2T", "70k", "7000000000" (case-insensitive suffix K/M/B/T,
    /// optional space). Nil for anything else, for ≤ 0 and for more than `maxParameters`.
    public static func parseParameters(_ text: String) -> Double? {
        var s = text.trimmingCharacters(in: .whitespaces)
        var multiplier = 1.0
        if let last = s.last, last.isLetter {
            switch last {
            case "k", "K": multiplier = 1e3
            case "m", "M": multiplier = 1e6
            case "b", "B": multiplier = 1e9
            case "t", "T": multiplier = 1e12
            default: return nil
            }
            s.removeLast()
            s = s.trimmingCharacters(in: .whitespaces)
        }
        // Plain decimal digits only: no signs, exponents, hex, "inf" or "nan".
        guard !s.isEmpty, s.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              s.filter({ $0 == "." }).count <= 1, s != ".", let value = Double(s)
        else { return nil }
        return valid(value * multiplier)
    }

    /// A number, or a string as for `parseParameters(_: String)`.
    public static func parseParameters(_ value: JSONValue) -> Double? {
        switch value {
        case .number(let n): valid(n)
        case .string(let s): parseParameters(s)
        default: nil
        }
    }

    private static func valid(_ n: Double) -> Double? {
        n.isFinite && n >= 1 && n <= maxParameters ? n : nil
    }

    public static func size(_ model: ModelSpec) -> SizingResult {
        let bytes = model.precision.bytesPerParameter
        let weights = model.parameters * bytes / gib
        var kv = 0.0
        if let given = model.kvCacheGiB {
            kv = given
        } else if let layers = model.layers, let hidden = model.hiddenSize, let context = model.contextLength {
            let batch = Double(model.batchSize ?? 1)
            kv = 2 * Double(layers) * Double(hidden) * Double(context) * batch * bytes / gib
        }
        let fraction = model.usableFraction ?? defaultUsableFraction
        return SizingResult(weightsGiB: weights, kvCacheGiB: kv, requiredGiB: (weights + kv) / fraction)
    }

    /// GPUs of `gpuMemoryGiB` each needed to hold `requiredGiB` (at least 1).
    public static func gpusNeeded(requiredGiB: Double, gpuMemoryGiB: Double) -> Int {
        guard gpuMemoryGiB > 0, requiredGiB.isFinite else { return Int.max }
        let n = (requiredGiB / gpuMemoryGiB).rounded(.up)
        guard n < Double(Int.max) else { return Int.max }
        return Swift.max(1, Int(n))
    }

    /// Whether `gpus` cards of `gpuMemoryGiB` hold the requirement.
    public static func fits(requiredGiB: Double, gpuMemoryGiB: Double, gpus: Int) -> Bool {
        gpuMemoryGiB * Double(gpus) >= requiredGiB
    }

    /// Reads a model object's members (shared by allocation requests and `POST /v1/sizing`).
    static func readModel(_ reader: ObjectReader) -> ModelSpec? {
        var parameters: Double?
        if let raw = reader.value("parameters", required: true) {
            parameters = parseParameters(raw)
            if parameters == nil {
                reader.errors.add(reader.field("parameters"),
                                  "must be a positive number of parameters such as 7000000000 or \"7B\", \"500M\", \"1.2T\"")
            }
        }
        let precision = reader.enumeration("precision", Precision.self, required: true)
        let contextLength = reader.integer("contextLength", in: 1...100_000_000)
        let layers = reader.integer("layers", in: 1...100_000)
        let hiddenSize = reader.integer("hiddenSize", in: 1...10_000_000)
        let batchSize = reader.integer("batchSize", in: 1...1_000_000)
        let kvCacheGiB = reader.number("kvCacheGiB", minimum: 0, maximum: 1_000_000)
        let usableFraction = reader.number("usableFraction", minimum: 0.01, maximum: 1)
        // Present-but-invalid optional members have been reported; absent ones are nil.
        reader.finish()
        guard let parameters, let precision else { return nil }
        return ModelSpec(parameters: parameters, precision: precision, contextLength: contextLength, layers: layers,
                         hiddenSize: hiddenSize, batchSize: batchSize, kvCacheGiB: kvCacheGiB, usableFraction: usableFraction)
    }
}

/// `POST /v1/sizing`: `{"parameters", "precision", "contextLength"?, "layers"?, "hiddenSize"?,
/// "batchSize"?, "kvCacheGiB"?, "usableFraction"?}`.
public enum SizingRequest {
    public static func parse(_ json: JSONValue) throws(ValidationFailure) -> ModelSpec {
        let errors = FieldErrorCollector()
        let model = errors.object(json).flatMap(ModelSizing.readModel)
        return try errors.result(model)
    }
}
