import Foundation

// Rule 4: `spread` divides replicas over the candidate regions in proportion to what each
// can hold now (largest remainder), or to the units' static weights when they have them,
// within the units' caps.

extension PlacementPlanner.Planner {
    mutating func runSpread(_ entries: [PlacementPlanner.Entry], maxes: [Int?], weights: [Int?] = []) {
        let n = entries.count
        let staticWeight = { (k: Int) -> Int? in entries[k].unit.flatMap { $0 < weights.count ? weights[$0] : nil } }
        var heldByRegion: [String: Int] = [:]
        for h in input.held { heldByRegion[h.region, default: 0] += max(0, h.count) }
        var heldAt = [Int](repeating: 0, count: n)
        var avail = [Int](repeating: 0, count: n)
        var weight = [Int](repeating: 0, count: n)
        // What a region can hold (held + available): new replicas never take it past this.
        var holdable = [Int](repeating: 0, count: n)
        var totalHeld = 0
        for k in 0..<n {
            let e = entries[k]
            heldAt[k] = heldByRegion[e.id] ?? 0
            if let i = e.index {
                let s = stat(i)
                if s.active { avail[k] = s.available }
            }
            holdable[k] = heldAt[k] + avail[k]
            weight[k] = staticWeight(k) ?? holdable[k]
            totalHeld += heldAt[k]
        }
        // Static weights divide the whole total, not at most each weight (`largestRemainder`
        // caps entries at their weight): scaled by the total, they never cap it.
        let isStatic = weights.contains { $0 != nil }
        let proportional = { (total: Int, w: [Int]) -> [Int] in
            !isStatic ? PlacementPlanner.largestRemainder(total, w)
                : PlacementPlanner.largestRemainder(total, w.map { $0 * Swift.max(1, total) })
        }
        // Shares of the total (held + new), with unit caps fixed one unit at a time.
        var share = [Int](repeating: 0, count: n)
        var open = Array(0..<n)
        var total = totalHeld + need
        var cappedUnits = Set<Int>()
        while true {
            let s = proportional(total, open.map { weight[$0] })
            for (j, k) in open.enumerated() { share[k] = s[j] }
            var violated: (unit: Int, cap: Int)?
            var sums: [Int: Int] = [:]
            for k in open { if let u = entries[k].unit { sums[u, default: 0] += share[k] } }
            for u in sums.keys.sorted() {
                if let cap = u < maxes.count ? maxes[u] : nil, sums[u]! > cap {
                    violated = (u, cap)
                    break
                }
            }
            guard let (u, cap) = violated else { break }
            let members = open.filter { entries[$0].unit == u }
            let heldInUnit = members.reduce(0) { $0 + heldAt[$1] }
            if cap <= heldInUnit {
                for k in members { share[k] = heldAt[k] }
                total -= heldInUnit
            } else {
                let s = proportional(cap, members.map { weight[$0] })
                for (j, k) in members.enumerated() { share[k] = s[j] }
                total -= cap
            }
            cappedUnits.insert(u)
            open.removeAll { entries[$0].unit == u }
            total = max(0, total)
            if open.isEmpty { break }
        }
        // New replicas go where a region is below its share.
        let deficit = (0..<n).map { max(0, min(share[$0], holdable[$0]) - heldAt[$0]) }
        var newCounts = PlacementPlanner.largestRemainder(need, deficit)
        // Unit caps on the final counts (held in a unit's regions + new ≤ max), then fill what
        // is still missing: first up to the shares, then up to what regions can give.
        var room = [Int: Int]()
        for (u, cap) in maxes.enumerated() {
            guard let cap else { continue }
            var heldInUnit = 0
            for k in 0..<n where entries[k].unit == u { heldInUnit += heldAt[k] }
            var left = max(0, cap - heldInUnit)
            for k in 0..<n where entries[k].unit == u {
                newCounts[k] = min(newCounts[k], left)
                left -= newCounts[k]
            }
            room[u] = left
        }
        var missing = need - newCounts.reduce(0, +)
        for limit in [deficit, avail] where missing > 0 {
            for k in 0..<n where missing > 0 {
                var add = min(limit[k] - newCounts[k], missing)
                if let u = entries[k].unit, let r = room[u] { add = min(add, r) }
                guard add > 0 else { continue }
                newCounts[k] += add
                missing -= add
                if let u = entries[k].unit, room[u] != nil { room[u]! -= add }
            }
        }
        for k in 0..<n {
            let e = entries[k]
            guard let (i, s) = usable(e.index, id: e.id, note: Self.unitNote(e.unit)) else { continue }
            let got = take(i, up: newCounts[k], unit: e.unit)
            var reason = describe(i, s)
            reason += "; spread share \(share[k]) of \(totalHeld + need)"
            if let w = staticWeight(k) { reason += " by weight \(w)" }
            if heldAt[k] > 0 { reason += " (\(heldAt[k]) held)" }
            if inventory[i].region.primary { reason += "; primary region" }
            reason += Self.unitNote(e.unit)
            if let u = e.unit, cappedUnits.contains(u), let cap = maxes[u] {
                reason += "; unit \(u) max \(cap) reached"
            }
            decisions.append(PlacementDecision(region: e.id, replicas: got, reason: reason))
        }
    }
}
