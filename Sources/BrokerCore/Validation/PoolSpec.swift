import Foundation
import JSON

/// Parses `PUT /v1/admin/regions/{regionId}/pools/{poolId}`: a pool's full description.
public enum PoolSpec {
    public static let maxResource = 100_000.0
    public static let maxCapacity = 1_000_000
    public static let maxGPUsPerInstance = 64
    /// The accelerator's fields: a pool of another class has none.
    public static let gpuFields = [
        "gpuSeries", "gpuVendor", "gpuMemoryGiB", "gpusPerInstance", "gpuPartitions", "gpuInterconnect",
    ]

    public static func parse(_ json: JSONValue, regionId: String, poolId: String) throws(ValidationFailure) -> Pool {
        let errors = FieldErrorCollector()
        if !Rules.isRegionId(regionId) {
            errors.add("regionId", "must match \(Rules.regionIdPattern)")
        }
        if !Rules.isRegionId(poolId) {
            errors.add("poolId", "must match \(Rules.regionIdPattern)")
        }
        guard let r = errors.object(json) else { throw ValidationFailure(errors: errors.errors) }
        if let bodyId = r.string("id", maxLength: nil), bodyId != poolId {
            errors.add("id", "must equal the pool id in the path")
        }
        if let bodyRegion = r.string("regionId", maxLength: nil), bodyRegion != regionId {
            errors.add("regionId", "must equal the region id in the path")
        }
        let computeClass = r.enumeration("computeClass", ComputeClass.self, required: true)
        let isGPU = computeClass == .gpu
        let isCPU = computeClass != nil && !isGPU

        var qos = QoS.allCases
        if let items = r.array("qos") {
            qos = []
            for (path, item) in items {
                guard let q = ObjectReader.checkEnum(item, QoS.self, at: path, errors: errors) else { continue }
                if qos.contains(q) {
                    errors.add(path, "duplicate value \"\(q.rawValue)\"")
                }
                qos.append(q)
            }
        }

        var gpuSeries: String?
        var gpuVendor: AcceleratorVendor?
        var gpuMemoryGiB: Double?
        var gpusPerInstance: Int?
        var gpuPartitions: [String] = []
        var gpuInterconnect: [String] = []
        if isCPU {
            for key in gpuFields where r.present(key) {
                errors.add(r.field(key), "only allowed for computeClass gpu")
            }
        } else {
            gpuSeries = r.string("gpuSeries", required: isGPU, maxLength: 64)
            // Absent: inferred from the model (`Pool.init`), `other` for a model the broker does not know.
            gpuVendor = r.enumeration("gpuVendor", AcceleratorVendor.self)
            gpuMemoryGiB = r.number("gpuMemoryGiB", required: isGPU, exclusiveMinimum: 0, maximum: 100_000)
            gpusPerInstance = r.integer("gpusPerInstance", required: isGPU, in: 1...maxGPUsPerInstance)
            gpuPartitions = r.stringArray("gpuPartitions", allowEmpty: true, maxItems: 32, itemMaxLength: 32, pattern: .token) ?? []
            gpuInterconnect = r.stringArray("gpuInterconnect", allowEmpty: true, maxItems: 8, itemMaxLength: 32, pattern: .token) ?? []
        }
        let cpu = r.number("cpu", required: true, exclusiveMinimum: 0, maximum: maxResource)
        let memoryGiB = r.number("memoryGiB", required: true, exclusiveMinimum: 0, maximum: maxResource)
        let instanceType = r.string("instanceType", required: true, maxLength: 128)
        let capacity = r.integer("capacity", required: true, in: 0...maxCapacity)
        let pricePerHour = r.number("pricePerHour", required: true, minimum: 0, maximum: 1_000_000)
        let deferScaleInSeconds = r.integer("deferScaleInSeconds", in: 0...86_400) ?? 600
        r.finish()

        guard errors.isEmpty, let computeClass, let cpu, let memoryGiB, let instanceType,
              let capacity, let pricePerHour
        else { throw ValidationFailure(errors: errors.errors) }
        return Pool(id: poolId, regionId: regionId, computeClass: computeClass, qos: qos, gpuSeries: gpuSeries,
                    gpuVendor: gpuVendor, gpuMemoryGiB: gpuMemoryGiB, gpusPerInstance: gpusPerInstance,
                    gpuPartitions: gpuPartitions, gpuInterconnect: gpuInterconnect, cpu: cpu, memoryGiB: memoryGiB,
                    instanceType: instanceType, capacity: capacity, pricePerHour: pricePerHour,
                    deferScaleInSeconds: deferScaleInSeconds)
    }
}
