import Foundation

// The planner proper: one plan, region by region, recording a decision for each.

extension PlacementPlanner {
    /// One region a unit (or the default policy) may use.
    struct Entry {
        /// Index into the inventory; nil for an id no region has.
        var index: Int?
        var id: String
        var unit: Int?
    }

    struct Planner {
        let input: PlacementInput
        let inventory: [RegionInventory]
        let need: Int
        /// With an index: the regions that may have pools of the shape; all others have none.
        let fitting: [Int]?
        var stats: [Int: RegionStat] = [:]
        var placements: [PlannedPlacement] = []
        var decisions: [PlacementDecision] = []
        var placed = 0
        private var indexByIdCache: [String: Int]?
        private var lastCandidates: (region: Int, pools: [Int])?

        init(_ input: PlacementInput) {
            self.input = input
            self.inventory = input.inventory
            self.need = max(0, input.replicas)
            self.fitting = input.index?.regions(fitting: input.shape)
        }

        // MARK: lookups

        mutating func stat(_ i: Int) -> RegionStat {
            if let s = stats[i] { return s }
            let s = mayFit(i)
                ? RegionStat(input.shape, inventory[i].region.state, inventory[i].pools)
                : RegionStat(input.shape, inventory[i].region.state, [])
            stats[i] = s
            return s
        }

        /// Whether region `i` may have a pool of the shape: false only when the index says it has none.
        func mayFit(_ i: Int) -> Bool {
            guard let fitting else { return true }
            var low = 0, high = fitting.count
            while low < high {
                let mid = (low + high) / 2
                if fitting[mid] < i { low = mid + 1 } else { high = mid }
            }
            return low < fitting.count && fitting[low] == i
        }

        /// The first region with this id.
        mutating func index(of id: String) -> Int? {
            if let index = input.index { return index.position[id] }
            if indexByIdCache == nil {
                var map: [String: Int] = [:]
                map.reserveCapacity(inventory.count)
                for (i, r) in inventory.enumerated() where map[r.region.id] == nil {
                    map[r.region.id] = i
                }
                indexByIdCache = map
            }
            return indexByIdCache![id]
        }

        /// Cordoned regions among `indices` (primary first, then id), then the active ones in
        /// the default order. Cordoned regions come first so that the decisions say why a
        /// region the client may have expected was not used even when the plan stops early.
        mutating func orderedRegions(_ indices: [Int]) -> [Int] {
            cordoned(indices) + activeInDefaultOrder(indices)
        }

        func cordoned(_ indices: [Int]) -> [Int] {
            // A local: closures that read `self.inventory` here copy the whole planner.
            let inventory = inventory
            var result = indices.filter { inventory[$0].region.state != .active }
            result.sort { a, b in
                // Field by field: a copy of `Region` costs a dozen reference-count operations.
                let pa = inventory[a].region.primary, pb = inventory[b].region.primary
                if pa != pb { return pa }
                let ia = inventory[a].region.id, ib = inventory[b].region.id
                if ia != ib { return PlacementPlanner.idBefore(ia, ib) }
                return a < b
            }
            return result
        }

        mutating func activeInDefaultOrder(_ indices: [Int]) -> [Int] {
            PlacementPlanner.defaultOrder(inventory, among: indices) { stat($0) }
        }

        /// The regions each unit may use, in order; a region already used by an earlier unit
        /// (or earlier in the same unit) is left out.
        mutating func resolveUnits(_ units: [PlacementUnit]) -> [[Entry]] {
            var claimed = Set<String>()
            var namedEarlier = Set<String>()
            var result: [[Entry]] = []
            result.reserveCapacity(units.count)
            for (u, unit) in units.enumerated() {
                var entries: [Entry] = []
                let ids = unit.regions ?? ["*"]
                let selector = unit.selector
                for id in ids {
                    if id == "*" {
                        let pool = inventory.indices.filter { i in
                            let r = inventory[i].region
                            if namedEarlier.contains(r.id) || claimed.contains(r.id) { return false }
                            if index(of: r.id) != i { return false }  // duplicate ids: the first wins
                            if let selector, !PlacementPlanner.selectorMatches(selector, r) { return false }
                            return true
                        }
                        for i in orderedRegions(pool) {
                            let id = inventory[i].region.id
                            claimed.insert(id)
                            entries.append(Entry(index: i, id: id, unit: u))
                        }
                    } else {
                        guard !claimed.contains(id) else { continue }
                        let i = index(of: id)
                        if let i, let selector, !PlacementPlanner.selectorMatches(selector, inventory[i].region) {
                            continue
                        }
                        claimed.insert(id)
                        entries.append(Entry(index: i, id: id, unit: u))
                    }
                }
                for id in ids where id != "*" { namedEarlier.insert(id) }
                result.append(entries)
            }
            return result
        }

        /// A unit's regions cheapest first; unknown and cordoned ones first, as the
        /// decisions say why they were skipped.
        mutating func byPrice(_ unit: [Entry]) -> [Entry] {
            let known = unit.compactMap(\.index)
            let order = cordoned(known) + PlacementPlanner.defaultOrder(inventory, among: known, byPrice: true) { stat($0) }
            return unit.filter { $0.index == nil } + order.compactMap { i in unit.first { $0.index == i } }
        }

        /// The default policy's regions in order, all of them, as `spread` weighs them all;
        /// `runDefaultPrefer` takes them in steps.
        mutating func defaultEntries() -> [Entry] {
            entries(orderedRegions(Array(inventory.indices)))
        }

        func entries(_ indices: [Int]) -> [Entry] {
            // Region ids are unique in a real inventory (the store's primary key): no dedupe here.
            let inventory = inventory  // as in `cordoned`
            return indices.map { Entry(index: $0, id: inventory[$0].region.id, unit: nil) }
        }

        // MARK: run

        mutating func run() {
            guard need > 0 else { return }
            if let pinned = input.pinnedRegion {
                runPinned(pinned)
                return
            }
            let policy = input.policy
            let units = policy?.units ?? []
            switch policy?.strategy ?? .prefer {
            case .prefer:
                if units.isEmpty {
                    runDefaultPrefer()
                } else {
                    runPrefer(resolveUnits(units), maxes: units.map(\.max))
                }
            case .cheapest:
                if units.isEmpty {
                    let all = Array(inventory.indices)
                    runPrefer([entries(cordoned(all) + PlacementPlanner.defaultOrder(inventory, among: all, byPrice: true) { stat($0) })], maxes: [nil])
                } else {
                    runPrefer(resolveUnits(units).map { byPrice($0) }, maxes: units.map(\.max))
                }
            case .spread:
                if units.isEmpty {
                    runSpread(defaultEntries(), maxes: [])
                } else {
                    runSpread(resolveUnits(units).flatMap { $0 }, maxes: units.map(\.max), weights: units.map(\.weight))
                }
            }
        }

        mutating func runPinned(_ id: String) {
            guard let (i, s) = usable(index(of: id), id: id, note: "; pinned, no fallback") else { return }
            let got = take(i, up: need, unit: nil)
            var reason = describe(i, s)
            reason += "; pinned region, no fallback"
            decisions.append(PlacementDecision(region: id, replicas: got, reason: reason))
        }

        /// `runPrefer` over `defaultEntries()`, in steps. The default order puts the active
        /// primary regions before all others whatever those offer, so the others are ranked
        /// (which scans every pool they have) only when the primaries fall short. Then the first
        /// of the others usually completes the plan: it is found in one pass, and the rest are
        /// sorted only when it does not.
        ///
        /// With an index, the first of the others is looked for among the regions that may
        /// fit: when one of them can give something, it ranks before every region that has no
        /// pool of the shape (those can give nothing). The rest are ranked in full, as without
        /// an index, only when that first one falls short.
        mutating func runDefaultPrefer() {
            let all = Array(inventory.indices)
            let inactive = input.index?.inactive ?? all.filter { inventory[$0].region.state != .active }
            let primaries = input.index?.primaries ?? all.filter { inventory[$0].region.primary }
            runPrefer([entries(cordoned(inactive) + activeInDefaultOrder(primaries))], maxes: [nil])
            guard placed < need else { return }
            var first: Int?
            if let fitting {
                let keys = PlacementPlanner.rankKeys(inventory, among: fitting.filter { !inventory[$0].region.primary }) { stat($0) }
                if let best = keys.min(by: { PlacementPlanner.ranksBefore($0, $1, in: inventory) }), best.price.isFinite {
                    first = best.index
                    runPrefer([entries([best.index])], maxes: [nil])
                    guard placed < need else { return }
                }
            }
            let others = all.filter { !inventory[$0].region.primary && $0 != first }
            var rest = PlacementPlanner.rankKeys(inventory, among: others) { stat($0) }
            if first == nil {
                let best = rest.indices.min { PlacementPlanner.ranksBefore(rest[$0], rest[$1], in: inventory) }
                guard let best else { return }
                runPrefer([entries([rest.remove(at: best).index])], maxes: [nil])
                guard placed < need else { return }
            }
            rest.sort { PlacementPlanner.ranksBefore($0, $1, in: inventory) }
            runPrefer([entries(rest.map(\.index))], maxes: [nil])
        }

        mutating func runPrefer(_ units: [[Entry]], maxes: [Int?]) {
            var heldByUnit: [Int: Int] = [:]
            for h in input.held {
                if let u = h.unit { heldByUnit[u, default: 0] += max(0, h.count) }
            }
            outer: for (u, entries) in units.enumerated() {
                let cap = maxes[u]
                let held = cap == nil ? 0 : heldByUnit[u] ?? 0
                var unitLeft = cap.map { max(0, $0 - held) } ?? Int.max
                for entry in entries {
                    if placed >= need { break outer }
                    guard let (i, s) = usable(entry.index, id: entry.id, note: Self.unitNote(entry.unit)) else { continue }
                    if unitLeft == 0, let cap, let unit = entry.unit {
                        var reason = "unit \(unit) max \(cap) reached"
                        if held > 0 { reason += " (\(held) held)" }
                        reason += "; " + describe(i, s)
                        decisions.append(PlacementDecision(region: entry.id, replicas: 0, reason: reason))
                        continue
                    }
                    let want = min(need - placed, unitLeft)
                    let got = take(i, up: want, unit: entry.unit)
                    if unitLeft != Int.max { unitLeft -= got }
                    var reason = describe(i, s)
                    if inventory[i].region.primary { reason += "; primary region" }
                    reason += Self.unitNote(entry.unit)
                    if let cap, let unit = entry.unit, unitLeft == 0, got > 0 {
                        reason += "; unit \(unit) max \(cap) reached"
                    }
                    decisions.append(PlacementDecision(region: entry.id, replicas: got, reason: reason))
                }
            }
        }

        // MARK: helpers

        /// Region `index` and its facts, or nil once the decisions say why it is skipped:
        /// no region has that id, or it is cordoned. `note` ends the reason.
        mutating func usable(_ index: Int?, id: String, note: @autoclosure () -> String) -> (index: Int, stat: RegionStat)? {
            guard let i = index else {
                decisions.append(PlacementDecision(region: id, replicas: 0, reason: "unknown region" + note()))
                return nil
            }
            let s = stat(i)
            guard s.active else {
                decisions.append(PlacementDecision(region: id, replicas: 0, reason: "cordoned" + note()))
                return nil
            }
            return (i, s)
        }

        /// Region `i`'s sorted candidate pools; each region is visited once, by `take` then `describe`.
        mutating func candidates(_ i: Int) -> [Int] {
            if let last = lastCandidates, last.region == i { return last.pools }
            let pools = PlacementPlanner.sortedCandidates(input.shape, inventory[i])
            lastCandidates = (i, pools)
            return pools
        }

        /// Takes up to `want` replicas from region `i`'s candidate pools in order.
        mutating func take(_ i: Int, up want: Int, unit: Int?) -> Int {
            guard want > 0 else { return 0 }
            var got = 0
            for p in candidates(i) {
                if got >= want { break }
                // Field by field: copies of the region and the pool cost reference counting.
                let n = min(inventory[i].pools[p].grantable, want - got)
                if n > 0 {
                    placements.append(PlannedPlacement(
                        region: inventory[i].region.id, poolId: inventory[i].pools[p].pool.id, count: n, unit: unit))
                    got += n
                }
            }
            placed += got
            return got
        }

        static func unitNote(_ unit: Int?) -> String {
            guard let unit else { return "" }
            return "; unit \(unit)"
        }

        /// "T4: 2 of 10 available" or "no pool matches …".
        mutating func describe(_ i: Int, _ s: RegionStat) -> String {
            let shape = input.shape
            guard s.matching > 0 else {
                if s.overCap > 0, let cap = shape.maxPricePerHour {
                    return "skipped for price: the cheapest fitting pool costs \(PlacementPlanner.format(s.cheapestOverCap))/h, "
                        + "above maxPricePerHour \(PlacementPlanner.format(cap))"
                }
                return PlacementPlanner.noMatch(shape)
            }
            var label = ""
            if shape.computeClass == .gpu {
                var seen: [String] = []
                for p in candidates(i) {
                    if let series = inventory[i].pools[p].pool.gpuSeries, !seen.contains(series) { seen.append(series) }
                }
                label = seen.isEmpty ? shape.computeClass.rawValue : seen.joined(separator: "/")
            } else {
                label = shape.computeClass.rawValue
            }
            var reason = "\(label): \(s.available) of \(s.capacity) available"
            if s.overCap > 0, let cap = shape.maxPricePerHour {
                reason += "; \(s.overCap) pool\(s.overCap == 1 ? "" : "s") above maxPricePerHour \(PlacementPlanner.format(cap)) skipped"
            }
            return reason
        }

        // MARK: finish

        mutating func finish() -> PlacementPlan {
            if placed < need && input.allOrNothing {
                let note = "; nothing placed: all-or-nothing needs \(need), only \(placed) fit"
                for d in decisions.indices where decisions[d].replicas > 0 {
                    decisions[d].replicas = 0
                    decisions[d].reason += note
                }
                return PlacementPlan(placements: [], decisions: decisions, placed: 0, satisfied: false)
            }
            return PlacementPlan(placements: placements, decisions: decisions, placed: placed, satisfied: placed == need)
        }
    }
}
