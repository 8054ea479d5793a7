/// Rule 6: scale-in releases the instances of the last unit first, newest first.
public enum ScaleInSelector {
    public struct HeldInstance: Sendable, Equatable {
        public var id: String
        /// nil for the default policy, where every instance shares one unit.
        public var unit: Int?
        /// Creation order: larger is newer.
        public var sequence: Int64

        public init(id: String, unit: Int?, sequence: Int64) {
            self.id = id
            self.unit = unit
            self.sequence = sequence
        }
    }

    public static func select(_ instances: [HeldInstance], releasing count: Int) -> [String] {
        instances.sorted { ($0.unit ?? -1, $0.sequence) > ($1.unit ?? -1, $1.sequence) }
            .prefix(max(0, count)).map(\.id)
    }
}

/// Rule 7: instances of one allocation in one region go round-robin over the
/// region's vSwitches, continuing after the ones it already has there.
public enum VSwitchAssigner {
    public static func assign(vSwitchIds: [String], alreadyInRegion: Int, count: Int) -> [String] {
        guard !vSwitchIds.isEmpty else { return [] }
        return (0..<max(0, count)).map { vSwitchIds[(alreadyInRegion + $0) % vSwitchIds.count] }
    }
}

/// Picks a tenant's named policy for a request without `placement`: the selector
/// must be contained in the request's labels; the most specific wins, then the name.
public enum PolicySelector {
    public static func select(_ policies: [NamedPolicy], labels: [String: String]) -> NamedPolicy? {
        policies.filter { $0.matches(labels: labels) }
            .min { ($1.selector.count, $0.name) < ($0.selector.count, $1.name) }
    }
}
