import Foundation

/// Rule 6: which instances a scale-in releases.
public enum ScaleInSelector {
    public struct HeldInstance: Sendable, Equatable {
        public var id: String
        /// The placement unit the instance was placed by; nil for the default policy or a pinned region.
        public var unit: Int?
        /// Creation order, larger = newer.
        public var sequence: Int64

        public init(id: String, unit: Int?, sequence: Int64) {
            self.id = id
            self.unit = unit
            self.sequence = sequence
        }
    }

    /// The ids of the `count` instances to release, in release order: the last unit first
    /// (highest index), newest first (highest `sequence`) within a unit.
    ///
    /// - An instance without a unit (`nil`) ranks below every unit index, i.e. it is released
    ///   after all instances that carry a unit. An allocation placed by the default policy has
    ///   `nil` everywhere and so simply releases its newest instances first.
    /// - Equal unit and sequence: the larger id (code-point order) goes first, so the answer is
    ///   deterministic.
    /// - `count <= 0` releases nothing; a count above the number of instances releases all.
    public static func select(_ instances: [HeldInstance], releasing count: Int) -> [String] {
        guard count > 0, !instances.isEmpty else { return [] }
        let ordered = instances.sorted { a, b in
            let ua = a.unit ?? -1
            let ub = b.unit ?? -1
            if ua != ub { return ua > ub }
            if a.sequence != b.sequence { return a.sequence > b.sequence }
            return b.id.unicodeScalars.lexicographicallyPrecedes(a.id.unicodeScalars)
        }
        return ordered.prefix(count).map(\.id)
    }
}

/// An allocation's `decisions` after a scale-in: one line per region it held, saying what
/// the scale-in kept and released there, then the earlier lines marked superseded (they
/// describe a placement the allocation no longer has).
public enum ScaleInDecisions {
    public static let supersededPrefix = "superseded by a scale-in: "

    /// `before` and `after`: the regions of the running instances, one entry per instance.
    public static func after(
        _ previous: [PlacementDecision], before: [String], after: [String], replicas: Int
    ) -> [PlacementDecision] {
        var regions: [String] = []
        for region in before where !regions.contains(region) { regions.append(region) }
        let current = regions.map { region in
            let held = before.filter { $0 == region }.count
            let kept = after.filter { $0 == region }.count
            return PlacementDecision(
                region: region, replicas: kept,
                reason: "scaled in to \(replicas): kept \(kept) of \(held), released \(held - kept) (last unit first, newest first)")
        }
        let earlier = previous.filter { !$0.reason.hasPrefix("scaled in to ") }.map { decision in
            decision.reason.hasPrefix(supersededPrefix)
                ? decision : PlacementDecision(region: decision.region, replicas: decision.replicas, reason: supersededPrefix + decision.reason)
        }
        return current + earlier
    }
}
