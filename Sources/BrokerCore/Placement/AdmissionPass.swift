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
/// - A starving request (`AdmissionOrder`) that did not fit holds the pools it could
///   use (`region/pool` keys): no later request of the pass is planned onto them, so
///   what frees there stays free until the starving request fits.
///
/// Capacity freed during the pass is picked up by the next pass, which the release wakes.
public struct AdmissionPass: Sendable {
    private var heldTenants: Set<String> = []
    /// tenant + shape → the fewest replicas that did not fit.
    private var shortOf: [String: Int] = [:]
    private var heldPools: Set<String> = []

    public var holdsPools: Bool { !heldPools.isEmpty }

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

    public mutating func hold(_ pools: Set<String>) {
        heldPools.formUnion(pools)
    }

    /// Whether a request that could use `pools` would compete for a pool held for a starving one.
    public func isHeld(_ pools: Set<String>) -> Bool {
        !heldPools.isDisjoint(with: pools)
    }

    private static func key(_ tenant: String, _ shapeKey: String) -> String {
        tenant + "\n" + shapeKey
    }
}
