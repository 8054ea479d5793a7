import Foundation

/// What one tenant holds against what it is entitled to, and the number that orders
/// tenants when capacity is scarce: the weighted dominant share (Dominant Resource
/// Fairness over borrowed capacity, as Kueue orders its cohorts). For each resource, the
/// part held above the guarantee as a fraction of what the pools hold, divided by the
/// resource's weight; the tenant's share is the largest of these. A tenant within all its
/// guarantees has share 0.
public struct TenantStanding: Sendable, Equatable {
    public var tenant: String
    public var share: TenantShare
    /// Amount held per resource key (running instances).
    public var held: [String: Double]

    public init(tenant: String, share: TenantShare = TenantShare(), held: [String: Double] = [:]) {
        self.tenant = tenant
        self.share = share
        self.held = held
    }

    /// Held above the guarantee. For `gpus` (any model), GPUs within a model's guarantee
    /// are not borrowed: the `gpus` guarantee covers what is above the models' guarantees.
    public func borrowed(_ resource: String) -> Double {
        let held = self.held[resource] ?? 0
        var covered = share.share(of: resource).guaranteed
        if resource == ShareResource.gpus {
            for (key, value) in share.resources where key.hasPrefix(ShareResource.modelPrefix) {
                covered += min(self.held[key] ?? 0, value.guaranteed)
            }
        }
        return max(0, held - covered)
    }

    /// The weighted dominant share, given what the pools hold of each resource.
    public func dominantShare(capacity: [String: Double]) -> Double {
        var dominant = 0.0
        for resource in held.keys {
            guard let total = capacity[resource], total > 0 else { continue }
            dominant = max(dominant, borrowed(resource) / total / share.share(of: resource).weight)
        }
        return dominant
    }

    /// Below its guarantee of some resource it holds less of than guaranteed.
    public var underSomeGuarantee: Bool {
        share.resources.contains { key, value in (held[key] ?? 0) < value.guaranteed }
    }

    /// Whether holding `need` more keeps it within its guarantees: some resource of the
    /// need is guaranteed, and no guaranteed one would be passed.
    public func staysWithinGuarantee(adding need: [String: Double]) -> Bool {
        var guaranteed = false
        for (resource, amount) in need {
            let limit = share.share(of: resource).guaranteed
            guard limit > 0 else { continue }
            guaranteed = true
            if (held[resource] ?? 0) + amount > limit { return false }
        }
        return guaranteed
    }

    /// Whether all of `use` is held above the guarantees: taking it leaves every guarantee whole.
    public func holdsAboveGuarantee(_ use: [String: Double]) -> Bool {
        var after = self
        after.held.add(use, times: -1)
        return use.allSatisfy { resource, amount in abs(borrowed(resource) - after.borrowed(resource) - amount) < 1e-9 }
    }
}

/// A running instance a reclaim may take: its seq (newer is higher), tenant and use.
public struct ReclaimCandidate: Sendable, Equatable {
    public var seq: Int64
    public var tenant: String
    public var use: [String: Double]

    public init(seq: Int64, tenant: String, use: [String: Double]) {
        self.seq = seq
        self.tenant = tenant
        self.use = use
    }
}

public enum FairShare {
    /// The rule against preemption ping-pong, Kueue's "LessThanInitialShare": a reclaim
    /// is fair only when the preemptor's share after it stays strictly below the victim's
    /// share before it. With `reclaimVictims`' other two rules (the preemptor stays within
    /// its guarantee, the victim keeps its own) the victim can never take the capacity
    /// straight back: asking again would put it above its guarantee, and only a tenant
    /// within its guarantee reclaims.
    public static func reclaimImprovesFairness(preemptorAfter: Double, victimBefore: Double) -> Bool {
        preemptorAfter < victimBefore
    }

    /// The instances to preempt so that a tenant under its guarantee gets `need` (what
    /// `count` instances of the pools it waits for hold): `count` of `candidates` (running
    /// instances on those pools), taken from the tenant with the highest share first,
    /// newest first, each wholly borrowed (never capacity within anyone's guarantee) and
    /// each passing `reclaimImprovesFairness`. All or nothing: empty when the request would
    /// pass the preemptor's guarantee or when not enough instances may be taken.
    public static func reclaimVictims(
        for preemptor: TenantStanding, need: [String: Double], count: Int, candidates: [ReclaimCandidate],
        standings: [String: TenantStanding], capacity: [String: Double]
    ) -> [Int64] {
        guard count > 0, preemptor.staysWithinGuarantee(adding: need) else { return [] }
        var after = preemptor
        after.held.add(need)
        let preemptorAfter = after.dominantShare(capacity: capacity)
        var standings = standings
        var remaining = candidates.filter { $0.tenant != preemptor.tenant }
        var taken: [Int64] = []
        while taken.count < count {
            let shares = standings.mapValues { $0.dominantShare(capacity: capacity) }
            let ranked = remaining.sorted { a, b in
                let (shareA, shareB) = (shares[a.tenant] ?? 0, shares[b.tenant] ?? 0)
                return shareA != shareB ? shareA > shareB : a.seq > b.seq
            }
            guard let pick = ranked.first(where: { candidate in
                guard let victim = standings[candidate.tenant] else { return false }
                return victim.holdsAboveGuarantee(candidate.use)
                    && reclaimImprovesFairness(preemptorAfter: preemptorAfter, victimBefore: shares[candidate.tenant] ?? 0)
            }) else { return [] }
            taken.append(pick.seq)
            standings[pick.tenant]?.held.add(pick.use, times: -1)
            remaining.removeAll { $0.seq == pick.seq }
        }
        return taken
    }

    /// In words, why a tenant's next request would or would not be admitted now.
    /// `pending`: the tenant's requests waiting; `free`: whether any pool has capacity free.
    public static func explain(
        _ standing: TenantStanding, capacity: [String: Double], pending: Int, free: Bool
    ) -> String {
        let share = standing.dominantShare(capacity: capacity)
        let shareText = String(format: "%.3f", share)
        let under = standing.share.resources.keys.sorted().first { (standing.held[$0] ?? 0) < standing.share.share(of: $0).guaranteed }
        let over = standing.share.resources.keys.sorted().first { key in
            guard let limit = standing.share.share(of: key).borrowingLimit else { return false }
            return standing.borrowed(key) >= limit
        }
        var parts: [String] = []
        if let under {
            let entitled = standing.share.share(of: under)
            parts.append(
                "it holds \(amount(standing.held[under] ?? 0)) of its \(amount(entitled.guaranteed)) guaranteed \(under)"
                    + ", so its requests come before those of tenants over their guarantees")
        } else if share > 0 {
            parts.append("it borrows above its guarantees (weighted dominant share \(shareText)), so requests of tenants with a lower share come first")
        } else {
            parts.append("it holds nothing above its guarantees (weighted dominant share 0)")
        }
        if let over {
            parts.append("it has reached its borrowing limit of \(over)")
        }
        if pending > 0 {
            parts.append("\(pending) of its requests wait in the queue, in order of priority, share and age")
        }
        parts.append(free ? "a request that fits free capacity now is granted at once" : "no capacity is free now: a new request waits")
        let sentence = parts.joined(separator: "; ")
        return sentence.prefix(1).uppercased() + sentence.dropFirst() + "."
    }

    private static func amount(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(format: "%.2f", value)
    }
}

/// The order of the pending queue: priority (highest first), then a request that has
/// waited past the starvation limit (oldest first: it holds the capacity it waits for),
/// then its tenant's weighted dominant share (lowest first), then age.
public struct AdmissionOrder: Sendable {
    public struct Entry: Sendable, Equatable {
        public var seq: Int64
        public var tenant: String
        public var priority: Int
        public var waitedSeconds: Double

        public init(seq: Int64, tenant: String, priority: Int = 0, waitedSeconds: Double) {
            self.seq = seq
            self.tenant = tenant
            self.priority = priority
            self.waitedSeconds = waitedSeconds
        }
    }

    public var starvationLimitSeconds: Double
    /// Weighted dominant share per tenant; a tenant not listed has share 0.
    public var shares: [String: Double]

    public init(starvationLimitSeconds: Double, shares: [String: Double] = [:]) {
        self.starvationLimitSeconds = starvationLimitSeconds
        self.shares = shares
    }

    public func isStarving(_ entry: Entry) -> Bool { entry.waitedSeconds >= starvationLimitSeconds }

    public func precedes(_ a: Entry, _ b: Entry) -> Bool {
        if a.priority != b.priority { return a.priority > b.priority }
        let (aStarving, bStarving) = (isStarving(a), isStarving(b))
        if aStarving != bStarving { return aStarving }
        if !aStarving {
            let (aShare, bShare) = (shares[a.tenant] ?? 0, shares[b.tenant] ?? 0)
            if aShare != bShare { return aShare < bShare }
        }
        return a.seq < b.seq
    }

    public func sorted(_ entries: [Entry]) -> [Entry] { entries.sorted(by: precedes) }
}
