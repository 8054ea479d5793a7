import Foundation
import JSON

extension AllocationRequest {
    public static let maxReplicas = 1000
    public static let leaseSecondsRange = 10...86_400
    public static let queueTimeoutRange = 1...86_400
    public static let maxGPUCount = 64
    /// Largest CPU count and memory (GiB) a shape may ask for.
    public static let maxResource = 100_000.0

    /// Validates a `POST /v1/allocations` body (see DESIGN.md "An allocation request").
    /// Reports every invalid field; `model` sets `shape.requiredGPUMemoryGiB` by the sizing rule.
    public static func parse(_ json: JSONValue) throws(ValidationFailure) -> AllocationRequest {
        let errors = FieldErrorCollector()
        guard let r = errors.object(json) else { throw ValidationFailure(errors: errors.errors) }

        let computeClass = r.enumeration("computeClass", ComputeClass.self, required: true)
        let isGPU = computeClass == .gpu
        let isCPU = computeClass != nil && !isGPU
        let qos = r.enumeration("qos", QoS.self) ?? .default

        // model: GPU class only.
        let modelGiven = r.present("model")
        var model: ModelSpec?
        if modelGiven && isCPU {
            errors.add(r.field("model"), "only allowed for computeClass gpu")
        } else if let reader = r.object("model") {
            model = ModelSizing.readModel(reader)
        }

        // gpuSeries (the models) and the other accelerator constraints: GPU class only;
        // something must say which devices will do.
        var gpuSeries: [String] = []
        var accelerator = AcceleratorConstraints()
        if isCPU {
            for key in ["gpuSeries"] + AcceleratorConstraints.fields where r.present(key) {
                errors.add(r.field(key), "only allowed for computeClass gpu")
            }
        } else {
            gpuSeries = r.stringArray("gpuSeries", maxItems: 32, itemMaxLength: 64) ?? []
            accelerator = AcceleratorConstraints.read(r)
        }
        if isGPU && !modelGiven && !r.present("gpuSeries") && accelerator.gpuVendor == nil
            && accelerator.minGPUMemoryGiB == nil
        {
            errors.add(r.field("gpuSeries"), "is required for computeClass gpu unless model, gpuVendor or minGPUMemoryGiB is given")
        }

        // gpuCount: 1... for GPU (default 1), 0 or absent for CPU classes.
        var gpuCount = isGPU ? 1 : 0
        if let count = r.integer("gpuCount", in: 0...maxGPUCount) {
            if isGPU && count < 1 {
                errors.add(r.field("gpuCount"), "must be at least 1 for computeClass gpu")
            } else if isCPU && count != 0 {
                errors.add(r.field("gpuCount"), "must be 0 or absent for computeClass \(computeClass!.rawValue)")
            }
            gpuCount = count
        }

        let cpu = r.number("cpu", required: true, exclusiveMinimum: 0, maximum: maxResource)
        let memoryGiB = r.number("memoryGiB", required: true, exclusiveMinimum: 0, maximum: maxResource)
        let replicas = r.integer("replicas", in: 1...maxReplicas) ?? 1
        let region = r.string("region", maxLength: 63, pattern: .regionId)
        let instanceType = r.string("instanceType", maxLength: 128)
        let maxPricePerHour = r.number("maxPricePerHour", minimum: 0, maximum: PlacementSpec.maxPrice)

        var placement: PlacementPolicy?
        if let reader = r.object("placement") {
            placement = PlacementSpec.readPolicy(reader, unitsRequired: true)
            reader.finish()
        }
        if r.members["region"] != nil && r.members["placement"] != nil {
            errors.add(r.field("placement"), "cannot be combined with region")
        }

        let allOrNothing = r.bool("allOrNothing") ?? true
        let leaseSeconds = r.integer("leaseSeconds", in: leaseSecondsRange) ?? 300
        let queue = r.bool("queue") ?? false
        let queueTimeoutSeconds = r.integer("queueTimeoutSeconds", in: queueTimeoutRange) ?? 3600
        let labels = r.labels("labels") ?? [:]
        r.finish()

        guard errors.isEmpty, let computeClass, let cpu, let memoryGiB else {
            throw ValidationFailure(errors: errors.errors)
        }
        let shape = ComputeShape(
            computeClass: computeClass, qos: qos, gpuSeries: gpuSeries, gpuCount: gpuCount,
            gpuVendor: accelerator.gpuVendor, minGPUMemoryGiB: accelerator.minGPUMemoryGiB,
            gpuInterconnect: accelerator.gpuInterconnect, gpuPartition: accelerator.gpuPartition, cpu: cpu,
            memoryGiB: memoryGiB, instanceType: instanceType,
            requiredGPUMemoryGiB: model.map { ModelSizing.size($0).requiredGiB }, maxPricePerHour: maxPricePerHour)
        return AllocationRequest(
            shape: shape, replicas: replicas, region: region, model: model, placement: placement,
            allOrNothing: allOrNothing, leaseSeconds: leaseSeconds, queue: queue,
            queueTimeoutSeconds: queueTimeoutSeconds, labels: labels)
    }

    /// The validated request as stable JSON (keys sorted, Codable form): what a store
    /// compares for `Idempotency-Key`. Its `Decodable` conformance reads it back.
    public func canonicalJSON() -> [UInt8] {
        var json = JSONWriter(capacity: 256)
        write(to: &json)
        return json.bytes
    }
}

extension AllocationRequest {
    /// The request as a `POST /v1/allocations` body that `parse` reads back as this
    /// request: what an alternative to a queued request offers the client to send.
    public var body: JSONValue {
        var json = JSONWriter(capacity: 512)
        json.beginObject()
        json.member("allOrNothing", allOrNothing)
        json.member("computeClass", shape.computeClass)
        json.member("cpu", shape.cpu)
        if shape.computeClass == .gpu { json.member("gpuCount", shape.gpuCount) }
        json.member("gpuInterconnect", shape.gpuInterconnect)
        json.member("gpuPartition", shape.gpuPartition)
        if !shape.gpuSeries.isEmpty { json.member("gpuSeries", shape.gpuSeries) }
        json.member("gpuVendor", shape.gpuVendor)
        json.member("instanceType", shape.instanceType)
        json.member("labels", labels)
        json.member("leaseSeconds", leaseSeconds)
        json.member("maxPricePerHour", shape.maxPricePerHour)
        json.member("memoryGiB", shape.memoryGiB)
        json.member("minGPUMemoryGiB", shape.minGPUMemoryGiB)
        json.member("model", model)
        json.member("placement", placement)
        json.member("qos", shape.qos)
        json.member("queue", queue)
        json.member("queueTimeoutSeconds", queueTimeoutSeconds)
        json.member("region", region)
        json.member("replicas", replicas)
        json.endObject()
        // JSONWriter writes only what its parser reads.
        return (try? JSONValue.parse(json.bytes)) ?? .null
    }
}

/// `PATCH /v1/allocations/{id}`: `{"replicas": n}`, 1...1000.
public struct ReplicaChange: Codable, Sendable, Equatable {
    public var replicas: Int

    public init(replicas: Int) { self.replicas = replicas }

    public static func parse(_ json: JSONValue) throws(ValidationFailure) -> ReplicaChange {
        let errors = FieldErrorCollector()
        var result: ReplicaChange?
        if let r = errors.object(json) {
            result = r.integer("replicas", required: true, in: 1...AllocationRequest.maxReplicas).map(ReplicaChange.init)
            r.finish()
        }
        return try errors.result(result)
    }
}

/// `POST /v1/allocations/{id}/renew`: `{"leaseSeconds"?}` (10...86400); nil keeps the
/// allocation's lease length. The API reads an empty body as `{}`; a JSON `null` is
/// not an object and is refused like any other non-object.
public struct RenewRequest: Codable, Sendable, Equatable {
    public var leaseSeconds: Int?

    public init(leaseSeconds: Int? = nil) { self.leaseSeconds = leaseSeconds }

    public static func parse(_ json: JSONValue) throws(ValidationFailure) -> RenewRequest {
        let errors = FieldErrorCollector()
        var result: RenewRequest?
        if let r = errors.object(json) {
            result = RenewRequest(leaseSeconds: r.integer("leaseSeconds", in: AllocationRequest.leaseSecondsRange))
            r.finish()
        }
        return try errors.result(result)
    }
}

/// A request's accelerator constraints beyond the models (`gpuSeries`), as the API names them.
struct AcceleratorConstraints {
    static let fields = ["gpuVendor", "minGPUMemoryGiB", "gpuInterconnect", "gpuPartition"]

    var gpuVendor: AcceleratorVendor?
    var minGPUMemoryGiB: Double?
    var gpuInterconnect: String?
    var gpuPartition: String?

    static func read(_ r: ObjectReader) -> AcceleratorConstraints {
        AcceleratorConstraints(
            gpuVendor: r.enumeration("gpuVendor", AcceleratorVendor.self),
            minGPUMemoryGiB: r.number("minGPUMemoryGiB", exclusiveMinimum: 0, maximum: 100_000),
            gpuInterconnect: r.string("gpuInterconnect", maxLength: 32, pattern: .token),
            gpuPartition: r.string("gpuPartition", maxLength: 32, pattern: .token))
    }
}
