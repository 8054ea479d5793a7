/// A request no current pool could ever hold, however much is released: no pool of its
/// shape in any region it may use, or more replicas than those pools' whole capacity.
/// Queueing it would only wait out its deadline, so the answer says so.
public enum Unsatisfiable {
    static let prefix = "unsatisfiable: "

    /// The decision that says so, with region `*`; nil when the request could be held.
    public static func decision(
        _ request: AllocationRequest, _ shape: ComputeShape, replicas: Int, inventory: [RegionInventory]
    ) -> PlacementDecision? {
        reason(request, shape, replicas: replicas, inventory: inventory).map {
            PlacementDecision(region: "*", replicas: 0, reason: prefix + $0)
        }
    }

    /// The reason among an allocation's decisions, if one says it can never be held.
    public static func reason(in decisions: [PlacementDecision]) -> String? {
        decisions.first { $0.region == "*" && $0.reason.hasPrefix(prefix) }?.reason
    }

    /// Why `replicas` new replicas of `request` can never be placed on `inventory` as
    /// reported (cordoned regions count: they may be uncordoned); nil when they could.
    static func reason(
        _ request: AllocationRequest, _ shape: ComputeShape, replicas: Int, inventory: [RegionInventory]
    ) -> String? {
        let regions = inventory.filter { request.region == nil || $0.region.id == request.region }
        let pools = regions.flatMap { region in region.pools.filter { PlacementPlanner.poolFits($0.pool, shape) } }
        let scope = request.region.map { "region \($0)" } ?? "any region"
        guard !pools.isEmpty else {
            return "no pool in \(scope) offers this shape (\(describe(shape)))"
        }
        let capacity = pools.reduce(0) { $0 + $1.pool.capacity }
        guard request.allOrNothing, replicas > capacity else { return nil }
        return "\(replicas) replicas requested, but the pools of this shape in \(scope) hold \(capacity) in all"
    }

    /// "class gpu, series T4 or A10, 1 GPU, 4 CPU, 16 GiB".
    static func describe(_ shape: ComputeShape) -> String {
        var parts = ["class \(shape.computeClass.rawValue)"]
        if !shape.gpuSeries.isEmpty { parts.append("series \(shape.gpuSeries.joined(separator: " or "))") }
        if let memory = shape.requiredGPUMemoryGiB { parts.append("\(formatted(memory)) GiB of GPU memory") }
        if shape.gpuCount > 0 { parts.append("\(shape.gpuCount) GPU\(shape.gpuCount == 1 ? "" : "s")") }
        parts.append("\(formatted(shape.cpu)) CPU")
        parts.append("\(formatted(shape.memoryGiB)) GiB")
        if shape.qos != .default { parts.append("QoS \(shape.qos.rawValue)") }
        if let type = shape.instanceType { parts.append("instance type \(type)") }
        if let cap = shape.maxPricePerHour { parts.append("at most \(formatted(cap))/h") }
        return parts.joined(separator: ", ")
    }

    private static func formatted(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}
