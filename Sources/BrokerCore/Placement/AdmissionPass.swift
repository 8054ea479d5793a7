/// What one pass of the pending admitter has learnt about the queue, so that it reads
/// the whole queue in one pass without planning the same refusal twice: any number of
/// blocked requests ahead of one that fits costs a read each, not a plan each.
///
/// - A tenant refused by its quota or budget is held for the rest of the pass: its
///   newer requests wait behind its older one (its own queue stays in order), and a
///   tenant with thousands of requests over budget adds nothing to the pass.
/// - A request that did not fit the pools marks its shape (everything of the request
///   but its replicas and times, as `shapeKey`) as short for that tenant (policies are
///   per tenant): a later request of the same shape and at least as many replicas would
///   not fit either. With `allOrNothing: false` nothing of the shape fit at all.
///
/// Capacity freed during the pass is picked up by the next pass, which the release wakes.
public struct AdmissionPass: Sendable {
    public private(set) var heldTenants: Set<String> = []
    /// tenant + shape → the fewest replicas that did not fit.
    private var shortOf: [String: Int] = [:]

    public init() {}

    public func worthPlanning(tenant: String, shapeKey: String, replicas: Int) -> Bool {
        if heldTenants.contains(tenant) { return false }
        guard let short = shortOf[Self.key(tenant, shapeKey)] else { return true }
        return replicas < short
    }

    public mutating func heldByLimits(tenant: String) {
        heldTenants.insert(tenant)
    }

    public mutating func didNotFit(tenant: String, shapeKey: String, replicas: Int, allOrNothing: Bool) {
        let short = allOrNothing ? replicas : 1
        let key = Self.key(tenant, shapeKey)
        shortOf[key] = min(shortOf[key] ?? short, short)
    }

    private static func key(_ tenant: String, _ shapeKey: String) -> String {
        tenant + "\n" + shapeKey
    }
}
