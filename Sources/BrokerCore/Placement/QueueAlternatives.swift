import JSON

/// A request that the planner sees fitting now, offered to a request that would wait in
/// the queue: the same request with one thing changed (another region, another GPU
/// model, or the price cap that lets it in), as a body the client can send.
public struct QueueAlternative: Codable, Sendable, Equatable {
    public var change: AlternativeChange
    /// The region, GPU model or price cap the alternative uses instead.
    public var region: String?
    public var gpuSeries: String?
    public var maxPricePerHour: Double?
    public var placedReplicas: Int
    /// What its placed replicas cost per hour, at the pools' prices now.
    public var pricePerHour: Double
    /// The body to send to `POST /v1/allocations`.
    public var request: JSONValue
}

public enum QueueAlternatives {
    /// At most this many, cheapest first.
    public static let limit = 5

    /// The alternatives for `input`'s request, planned as it would be now without waiting
    /// or preempting: an alternative is offered only when its plan would grant. `input`
    /// should see the whole inventory, not only the pools of the request's series.
    public static func find(_ input: GrantInput) -> [QueueAlternative] {
        var input = input
        input.index = nil
        input.mayQueue = false
        input.preemptible = []
        let request = input.request
        var found: [QueueAlternative] = []
        func consider(_ change: AlternativeChange, _ changed: AllocationRequest) {
            var attempt = input
            attempt.request = changed
            let plan = GrantPlanner.plan(attempt)
            guard plan.outcome == .grant else { return }
            found.append(QueueAlternative(
                change: change, region: change == .region ? changed.region : nil,
                gpuSeries: change == .gpuSeries ? changed.shape.gpuSeries.first : nil,
                maxPricePerHour: change == .maxPricePerHour ? changed.shape.maxPricePerHour : nil,
                placedReplicas: plan.placement.placed, pricePerHour: pricePerHour(plan, input.inventory),
                request: changed.body))
        }
        if let cap = priceCapThatFits(input) {
            var raised = request
            raised.shape.maxPricePerHour = cap
            raised.placement?.maxPricePerHour = nil
            consider(.maxPricePerHour, raised)
        }
        for region in input.inventory where region.region.state == .active && region.region.id != request.region {
            var pinned = request
            pinned.region = region.region.id
            pinned.placement = nil
            consider(.region, pinned)
        }
        if request.shape.computeClass == .gpu, request.model == nil {
            let series = Set(input.inventory.flatMap { $0.pools.compactMap(\.pool.gpuSeries) })
            for model in series.subtracting(request.shape.gpuSeries).sorted() {
                var other = request
                other.shape.gpuSeries = [model]
                consider(.gpuSeries, other)
            }
        }
        let ranked = found.enumerated().sorted {
            ($0.element.pricePerHour, -$0.element.placedReplicas, $0.offset)
                < ($1.element.pricePerHour, -$1.element.placedReplicas, $1.offset)
        }
        return ranked.prefix(limit).map(\.element)
    }

    /// The lowest cap that lets the request in: the dearest pool its plan without a cap uses.
    static func priceCapThatFits(_ input: GrantInput) -> Double? {
        guard GrantPlanner.effectiveShape(input.request).maxPricePerHour != nil else { return nil }
        var uncapped = input
        uncapped.request.shape.maxPricePerHour = nil
        uncapped.request.placement?.maxPricePerHour = nil
        let plan = GrantPlanner.plan(uncapped)
        guard plan.outcome == .grant else { return nil }
        return plan.placement.placements.compactMap { price(of: $0, input.inventory) }.max()
    }

    /// A plan's placements at their pools' prices per hour.
    public static func pricePerHour(_ plan: GrantPlan, _ inventory: [RegionInventory]) -> Double {
        plan.placement.placements.reduce(0) { $0 + Double($1.count) * (price(of: $1, inventory) ?? 0) }
    }

    static func price(of placement: PlannedPlacement, _ inventory: [RegionInventory]) -> Double? {
        inventory.first { $0.region.id == placement.region }?.pools.first { $0.pool.id == placement.poolId }?.pool.pricePerHour
    }
}
