import Foundation
import JSON

/// `GET /v1/inventory?computeClass&gpuSeries&gpuCount&cpu&memoryGiB&qos[&instanceType]`:
/// the shape of one replica. Field paths are the parameter names; unknown parameters are errors.
public enum InventoryQuery {
    public static func parse(_ parameters: [String: String]) throws(ValidationFailure) -> ComputeShape {
        try parseSorted(parameters).shape
    }

    /// The shape and `sort`: `placement` (default: the default placement order) or `price`.
    public static func parseSorted(
        _ parameters: [String: String]
    ) throws(ValidationFailure) -> (shape: ComputeShape, sort: InventorySort) {
        let errors = FieldErrorCollector()
        let r = ObjectReader(path: "", members: parameters.mapValues(JSONValue.string), errors: errors, coerceStrings: true)
        let computeClass = r.enumeration("computeClass", ComputeClass.self, required: true)
        let isGPU = computeClass == .gpu
        var gpuSeries: [String] = []
        // gpuSeries and gpuCount filter like the shape's other fields: with a class
        // without GPUs they match no pool, rather than being refused (the document
        // cannot state a rule across query parameters).
        if let list = r.string("gpuSeries", allowEmpty: true, maxLength: 2048) {
            let items = list.split(separator: ",", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }
            if items.contains(where: \.isEmpty) {
                errors.add("gpuSeries", "must be a comma-separated list of non-empty series")
            } else if items.contains(where: { $0.count > 64 }) {
                errors.add("gpuSeries", "series must be at most 64 characters")
            } else {
                for item in items where !gpuSeries.contains(item) { gpuSeries.append(item) }
            }
        }
        var gpuCount = isGPU ? 1 : 0
        if let count = r.integer("gpuCount", in: 0...AllocationRequest.maxGPUCount) {
            gpuCount = count
        }
        let cpu = r.number("cpu", required: true, exclusiveMinimum: 0, maximum: AllocationRequest.maxResource)
        let memoryGiB = r.number("memoryGiB", required: true, exclusiveMinimum: 0, maximum: AllocationRequest.maxResource)
        let qos = r.enumeration("qos", QoS.self) ?? .default
        let instanceType = r.string("instanceType", maxLength: 128)
        let maxPricePerHour = r.number("maxPricePerHour", minimum: 0, maximum: PlacementSpec.maxPrice)
        let sort = r.enumeration("sort", InventorySort.self) ?? .placement
        r.finish()
        guard errors.isEmpty, let computeClass, let cpu, let memoryGiB else {
            throw ValidationFailure(errors: errors.errors)
        }
        let shape = ComputeShape(
            computeClass: computeClass, qos: qos, gpuSeries: gpuSeries, gpuCount: gpuCount, cpu: cpu,
            memoryGiB: memoryGiB, instanceType: instanceType, maxPricePerHour: maxPricePerHour)
        return (shape, sort)
    }
}

/// The order of `GET /v1/inventory`'s regions.
public enum InventorySort: String, CaseIterable, Sendable {
    /// The default placement order: primary first, then price, then available replicas, then id.
    case placement
    /// Cheapest first, as the `cheapest` strategy orders them.
    case price
}
