import XCTest
@testable import BrokerCore

/// Property tests over seeded random inventories and requests: every run replays exactly.
final class PlacementPropertyTests: XCTestCase {
    static let series = ["T4", "A10", "L20", "H20"]
    static let prices: [Double] = [0, 0.5, 1, 1, 2]

    struct Case {
        var input: PlacementInput
    }

    static func randomInventory(_ rng: inout SplitMix64) -> [RegionInventory] {
        let regionCount = Int.random(in: 0...7, using: &rng)
        let primary = regionCount == 0 ? -1 : Int.random(in: 0..<regionCount, using: &rng)
        var result: [RegionInventory] = []
        for r in 0..<regionCount {
            let id = "r\(r)"
            let region = mkRegion(
                id, primary: r == primary, kind: Bool.random(using: &rng) ? .serverless : .onPremises,
                state: Int.random(in: 0..<6, using: &rng) == 0 ? .cordoned : .active,
                labels: Bool.random(using: &rng) ? ["tier": "gold"] : [:])
            var pools: [PoolUsage] = []
            for p in 0..<Int.random(in: 0...4, using: &rng) {
                let capacity = Int.random(in: 0...8, using: &rng)
                let allocated = Int.random(in: 0...(capacity + 2), using: &rng)
                let idle = Int.random(in: 0...min(allocated, 3), using: &rng)
                let price = prices.randomElement(using: &rng)!
                let qos: [QoS] = [[.default], [.bestEffort], QoS.allCases].randomElement(using: &rng)!
                if Bool.random(using: &rng) {
                    pools.append(gpuPool(
                        "\(id)-p\(p)", id, series: series.randomElement(using: &rng)!,
                        memory: [8.0, 16, 24, 48].randomElement(using: &rng)!, gpus: Int.random(in: 1...2, using: &rng),
                        cpu: [4.0, 8].randomElement(using: &rng)!, memoryGiB: [16.0, 32].randomElement(using: &rng)!,
                        type: ["ecs.a", "ecs.b"].randomElement(using: &rng)!, capacity: capacity, price: price,
                        qos: qos, allocated: allocated, idle: idle))
                } else {
                    pools.append(cpuPool(
                        "\(id)-p\(p)", id, cpu: [1.0, 2, 4].randomElement(using: &rng)!, memoryGiB: [2.0, 4, 8].randomElement(using: &rng)!,
                        type: ["ecs.a", "ecs.b"].randomElement(using: &rng)!, capacity: capacity, price: price,
                        qos: qos, allocated: allocated, idle: idle))
                }
            }
            result.append(inv(region, pools))
        }
        return result
    }

    static func randomShape(_ rng: inout SplitMix64) -> ComputeShape {
        let qos: QoS = Int.random(in: 0..<4, using: &rng) == 0 ? .bestEffort : .default
        let type: String? = Int.random(in: 0..<5, using: &rng) == 0 ? "ecs.a" : nil
        if Bool.random(using: &rng) {
            return ComputeShape(computeClass: .generalPurpose, qos: qos, cpu: [1.0, 2].randomElement(using: &rng)!,
                                memoryGiB: [2.0, 4].randomElement(using: &rng)!, instanceType: type)
        }
        if Int.random(in: 0..<3, using: &rng) == 0 {
            return ComputeShape(computeClass: .gpu, qos: qos, gpuCount: Int.random(in: 1...2, using: &rng), cpu: 4, memoryGiB: 16,
                                instanceType: type, requiredGPUMemoryGiB: [13.0, 20, 30].randomElement(using: &rng)!)
        }
        let accepted = Array(series.shuffled(using: &rng).prefix(Int.random(in: 1...3, using: &rng)))
        return ComputeShape(computeClass: .gpu, qos: qos, gpuSeries: accepted, gpuCount: 1, cpu: 4, memoryGiB: 16, instanceType: type)
    }

    static func randomPolicy(_ rng: inout SplitMix64, regionCount: Int) -> PlacementPolicy? {
        if Int.random(in: 0..<4, using: &rng) == 0 { return nil }
        let strategy: PlacementStrategy = Bool.random(using: &rng) ? .prefer : .spread
        var units: [PlacementUnit] = []
        for _ in 0..<Int.random(in: 0...3, using: &rng) {
            var unit = PlacementUnit()
            switch Int.random(in: 0..<5, using: &rng) {
            case 0: unit.regions = ["*"]
            case 1: unit.selector = RegionSelector(kind: .onPremises)
            case 2: unit.selector = RegionSelector(labels: ["tier": "gold"])
            default:
                unit.regions = (0..<Int.random(in: 1...3, using: &rng)).map { _ in "r\(Int.random(in: 0...(regionCount + 1), using: &rng))" }
            }
            if Bool.random(using: &rng) { unit.max = Int.random(in: 0...6, using: &rng) }
            units.append(unit)
        }
        return PlacementPolicy(strategy: strategy, units: units)
    }

    static func randomInput(_ rng: inout SplitMix64) -> PlacementInput {
        let inventory = randomInventory(&rng)
        let pinned: String? = Int.random(in: 0..<6, using: &rng) == 0 ? "r\(Int.random(in: 0...inventory.count, using: &rng))" : nil
        return PlacementInput(
            shape: randomShape(&rng), replicas: Int.random(in: 0...12, using: &rng), pinnedRegion: pinned,
            policy: randomPolicy(&rng, regionCount: inventory.count), allOrNothing: Bool.random(using: &rng), inventory: inventory)
    }

    /// Applies a plan to the inventory: idle instances are reused first, then new capacity.
    static func apply(_ plan: PlacementPlan, to inventory: inout [RegionInventory]) {
        for p in plan.placements {
            let r = inventory.firstIndex { $0.region.id == p.region }!
            let q = inventory[r].pools.firstIndex { $0.pool.id == p.poolId }!
            var usage = inventory[r].pools[q]
            let reuse = min(usage.idle, p.count)
            usage.idle -= reuse
            usage.allocated += p.count - reuse
            inventory[r].pools[q] = usage
        }
    }

    static func held(from plan: PlacementPlan) -> [HeldReplicas] {
        var result: [HeldReplicas] = []
        for p in plan.placements {
            if let i = result.firstIndex(where: { $0.region == p.region && $0.unit == p.unit }) {
                result[i].count += p.count
            } else {
                result.append(HeldReplicas(region: p.region, unit: p.unit, count: p.count))
            }
        }
        return result
    }

    // The oracle: rule 1 of the design and the pool counters, written from their text
    // rather than taken from the planner, so that a change to the planner's fit rule
    // shows up as a disagreement instead of moving the oracle with it.

    static func referenceFits(_ pool: Pool, _ shape: ComputeShape) -> Bool {
        let series = shape.gpuSeries.isEmpty || pool.gpuSeries.map { shape.gpuSeries.contains($0) } == true
        let gpuMemory = shape.requiredGPUMemoryGiB.map { (pool.gpuMemoryGiB ?? 0) * Double(shape.gpuCount) >= $0 } ?? true
        return pool.computeClass == shape.computeClass && pool.qos.contains(shape.qos) && series && gpuMemory
            && (pool.gpusPerInstance ?? 0) >= shape.gpuCount && pool.cpu >= shape.cpu && pool.memoryGiB >= shape.memoryGiB
            && (shape.instanceType == nil || shape.instanceType == pool.instanceType)
    }

    /// Idle instances, plus new ones up to the capacity (none when stock shrank below use).
    static func referenceGrantable(_ usage: PoolUsage) -> Int {
        max(0, usage.pool.capacity - usage.allocated) + usage.idle
    }

    static func referenceAvailable(_ shape: ComputeShape, in region: RegionInventory) -> Int {
        guard region.region.state == .active else { return 0 }
        return region.pools.filter { referenceFits($0.pool, shape) }.reduce(0) { $0 + referenceGrantable($1) }
    }

    func check(_ input: PlacementInput, _ plan: PlacementPlan, file: StaticString = #filePath, line: UInt = #line) {
        let need = max(0, input.replicas)
        // Counts positive, per pool never above grantable, only fitting pools of active regions.
        var perPool: [String: Int] = [:]
        for p in plan.placements {
            XCTAssertGreaterThan(p.count, 0, file: file, line: line)
            perPool["\(p.region)/\(p.poolId)", default: 0] += p.count
        }
        for (key, count) in perPool {
            let parts = key.split(separator: "/").map(String.init)
            guard let region = input.inventory.first(where: { $0.region.id == parts[0] }),
                  let usage = region.pools.first(where: { $0.pool.id == parts[1] })
            else { return XCTFail("placement on unknown pool \(key)", file: file, line: line) }
            XCTAssertEqual(region.region.state, .active, file: file, line: line)
            XCTAssertTrue(Self.referenceFits(usage.pool, input.shape), "pool \(key)", file: file, line: line)
            XCTAssertLessThanOrEqual(count, Self.referenceGrantable(usage), "pool \(key)", file: file, line: line)
        }
        let total = plan.placements.reduce(0) { $0 + $1.count }
        XCTAssertEqual(total, plan.placed, file: file, line: line)
        XCTAssertLessThanOrEqual(plan.placed, need, file: file, line: line)
        XCTAssertEqual(plan.satisfied, plan.placed == need, file: file, line: line)
        if input.allOrNothing {
            XCTAssertTrue(plan.placed == 0 || plan.placed == need, file: file, line: line)
            if !plan.satisfied { XCTAssertEqual(plan.placements, [], file: file, line: line) }
        }
        // Each region is decided on once.
        XCTAssertEqual(Set(plan.decisionRegions).count, plan.decisions.count, "\(plan.decisionRegions)", file: file, line: line)
        for p in plan.placements {
            XCTAssertTrue(plan.decisionRegions.contains(p.region), file: file, line: line)
        }
        XCTAssertEqual(plan.decisions.reduce(0) { $0 + $1.replicas }, plan.placed, file: file, line: line)
        // Pinned never leaves its region.
        if let pinned = input.pinnedRegion {
            XCTAssertTrue(plan.placements.allSatisfy { $0.region == pinned && $0.unit == nil }, file: file, line: line)
            if need > 0 { XCTAssertEqual(plan.decisionRegions, [pinned], file: file, line: line) }
            let available = input.inventory.first { $0.region.id == pinned }.map { Self.referenceAvailable(input.shape, in: $0) } ?? 0
            if !input.allOrNothing || available >= need {
                XCTAssertEqual(plan.placed, min(need, available), file: file, line: line)
            }
        } else if let policy = input.policy, !policy.units.isEmpty {
            // Unit max, counting held replicas of the unit.
            var heldByUnit: [Int: Int] = [:]
            for h in input.held { if let u = h.unit { heldByUnit[u, default: 0] += h.count } }
            for (u, unit) in policy.units.enumerated() {
                guard let cap = unit.max else { continue }
                let new = plan.placements.filter { $0.unit == u }.reduce(0) { $0 + $1.count }
                let held = heldByUnit[u] ?? 0
                XCTAssertLessThanOrEqual(new, max(0, cap - held), "unit \(u)", file: file, line: line)
            }
            XCTAssertTrue(plan.placements.allSatisfy { $0.unit != nil }, file: file, line: line)
        } else {
            // Default policy: as many as the active regions can give.
            let available = input.inventory.reduce(0) { $0 + Self.referenceAvailable(input.shape, in: $1) }
            if !input.allOrNothing || available >= need {
                XCTAssertEqual(plan.placed, min(need, available), file: file, line: line)
            }
            XCTAssertTrue(plan.placements.allSatisfy { $0.unit == nil }, file: file, line: line)
        }
        // Deterministic, and independent of the order regions and pools are listed in.
        XCTAssertEqual(PlacementPlanner.plan(input), plan, file: file, line: line)
        var shuffled = input
        var rng = SplitMix64(seed: UInt64(truncatingIfNeeded: total &* 7919 &+ input.inventory.count))
        shuffled.inventory = input.inventory.shuffled(using: &rng).map { RegionInventory(region: $0.region, pools: $0.pools.shuffled(using: &rng)) }
        shuffled.held = input.held.shuffled(using: &rng)
        XCTAssertEqual(PlacementPlanner.plan(shuffled), plan, file: file, line: line)
    }

    func testRandomNewAllocations() {
        var rng = SplitMix64(seed: 20_240_601)
        for _ in 0..<3000 {
            let input = Self.randomInput(&rng)
            check(input, PlacementPlanner.plan(input))
        }
    }

    func testRandomScaleOuts() {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<2000 {
            var input = Self.randomInput(&rng)
            input.pinnedRegion = nil
            input.allOrNothing = false
            let first = PlacementPlanner.plan(input)
            var second = input
            Self.apply(first, to: &second.inventory)
            second.held = Self.held(from: first)
            second.replicas = Int.random(in: 0...8, using: &rng)
            second.allOrNothing = Bool.random(using: &rng)
            let plan = PlacementPlanner.plan(second)
            check(second, plan)
            // Unit max holds over the whole allocation (held + new) when the first grant respected it.
            if let policy = second.policy {
                for (u, unit) in policy.units.enumerated() {
                    guard let cap = unit.max else { continue }
                    let all = (first.placements + plan.placements).filter { $0.unit == u }.reduce(0) { $0 + $1.count }
                    XCTAssertLessThanOrEqual(all, cap)
                }
            }
        }
    }

    func testSpreadMatchesLargestRemainderWhenEverythingFits() {
        var rng = SplitMix64(seed: 99)
        for _ in 0..<1000 {
            let caps = (0..<Int.random(in: 1...5, using: &rng)).map { _ in Int.random(in: 0...20, using: &rng) }
            let inventory = caps.enumerated().map { i, cap in inv(mkRegion("r\(i)", primary: i == 0), [cpuPool("p\(i)", "r\(i)", capacity: cap)]) }
            let replicas = Int.random(in: 0...30, using: &rng)
            let policy = PlacementPolicy(strategy: .spread, units: [PlacementUnit(regions: inventory.map(\.region.id))])
            let plan = PlacementPlanner.plan(PlacementInput(shape: cpuShape, replicas: replicas, policy: policy, allOrNothing: false, inventory: inventory))
            let expected = PlacementPlanner.largestRemainder(replicas, caps)
            let got = inventory.map { r in plan.placements.filter { $0.region == r.region.id }.reduce(0) { $0 + $1.count } }
            XCTAssertEqual(got, expected, "\(replicas) over \(caps)")
            XCTAssertEqual(plan.placed, min(replicas, caps.reduce(0, +)))
        }
    }

    func testLargestRemainderProperties() {
        var rng = SplitMix64(seed: 3)
        for _ in 0..<3000 {
            let weights = (0..<Int.random(in: 0...6, using: &rng)).map { _ in Int.random(in: 0...50, using: &rng) }
            let total = Int.random(in: 0...200, using: &rng)
            let shares = PlacementPlanner.largestRemainder(total, weights)
            let sum = weights.reduce(0, +)
            XCTAssertEqual(shares.reduce(0, +), min(total, sum))
            for (s, w) in zip(shares, weights) {
                XCTAssertLessThanOrEqual(s, w)
                XCTAssertGreaterThanOrEqual(s, 0)
                if sum > 0, total < sum {
                    // Within one of the exact proportion.
                    let exact = Double(total) * Double(w) / Double(sum)
                    XCTAssertLessThan(abs(Double(s) - exact), 1.0 + 1e-9)
                }
            }
        }
    }
}
