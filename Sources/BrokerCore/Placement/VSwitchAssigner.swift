import Foundation

/// Rule 7: vSwitches for new instances.
public enum VSwitchAssigner {
    /// Rule 7: instances of one allocation in one region go round-robin over the region's
    /// vSwitches, continuing after the ones it already has: the k-th new instance (0-based) gets
    /// `vSwitchIds[(alreadyInRegion + k) % vSwitchIds.count]`.
    ///
    /// No vSwitches (or `count <= 0`) gives `[]`; a negative `alreadyInRegion` counts as 0.
    public static func assign(vSwitchIds: [String], alreadyInRegion: Int, count: Int) -> [String] {
        guard count > 0, !vSwitchIds.isEmpty else { return [] }
        let n = vSwitchIds.count
        let start = max(0, alreadyInRegion) % n
        var result: [String] = []
        result.reserveCapacity(count)
        for k in 0..<count {
            result.append(vSwitchIds[(start + k) % n])
        }
        return result
    }
}
