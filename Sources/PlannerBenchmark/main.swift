import BrokerCore
import Foundation

// Placement decisions per second for 100 regions × 20 pools, on the calling thread (one core).
// Each decision is one `PlacementPlanner.plan` call for a 1-GPU T4 replica under the default
// policy, the shape of the benchmark's `POST /v1/allocations`. Usage values rotate so the
// planner cannot see the same inventory twice in a row.
// Usage: PlannerBenchmark [seconds] [primary-full]   (default 3). Prints `decisions/s N cpu N`:
// per second of wall time, and per second of this thread's CPU time (what one core gives when
// the machine is shared: other processes taking turns on the core lower the first figure, not
// the second). The primary region comes first whatever the others offer, so a plan it can
// satisfy never looks at the other 99; `primary-full` leaves it nothing to give, so that every
// plan ranks all 100 regions.

let arguments = CommandLine.arguments.dropFirst()
let seconds = arguments.first.flatMap(Double.init) ?? 3
let primaryFull = arguments.contains("primary-full")
let series = ["T4", "A10", "L20", "A100", "V100"]

func makeInventory(seed: Int) -> [RegionInventory] {
    (0..<100).map { r in
        let region = Region(
            id: String(format: "region-%03d", r), kind: r % 5 == 0 ? .onPremises : .serverless, primary: r == 0,
            vpcId: "vpc-\(r)", vSwitchIds: ["vsw-\(r)-a", "vsw-\(r)-b"], securityGroupId: "sg-\(r)",
            labels: ["tier": r % 2 == 0 ? "gold" : "silver"], state: r % 17 == 16 ? .cordoned : .active)
        let pools = (0..<20).map { p -> PoolUsage in
            let gpu = p < 15
            let pool = Pool(
                id: String(format: "pool-%02d", p), regionId: region.id,
                computeClass: gpu ? .gpu : (p % 2 == 0 ? .generalPurpose : .performance),
                gpuSeries: gpu ? series[p % series.count] : nil, gpuMemoryGiB: gpu ? 24 : nil,
                gpusPerInstance: gpu ? 1 + p % 2 : nil, cpu: Double(4 << (p % 3)), memoryGiB: Double(16 << (p % 3)),
                instanceType: "ecs.type-\(p)", capacity: 1000, pricePerHour: 1.0 + Double((r * 7 + p * 3) % 50) / 10)
            if primaryFull, region.primary { return PoolUsage(pool: pool, allocated: pool.capacity, idle: 0) }
            let allocated = (r * 31 + p * 17 + seed) % 1001
            return PoolUsage(pool: pool, allocated: allocated, idle: allocated % 3)
        }
        return RegionInventory(region: region, pools: pools)
    }
}

let inventories = (0..<8).map { makeInventory(seed: $0 * 97) }
let shape = ComputeShape(computeClass: .gpu, qos: .default, gpuSeries: ["T4"], gpuCount: 1, cpu: 4, memoryGiB: 15)

func threadCPUSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

var decisions = 0
var placed = 0
let clock = ContinuousClock()
let cpuStart = threadCPUSeconds()
let start = clock.now
let deadline = start + .milliseconds(Int(seconds * 1000))
while clock.now < deadline {
    for i in 0..<64 {
        let plan = PlacementPlanner.plan(PlacementInput(shape: shape, replicas: 1, inventory: inventories[i & 7]))
        placed &+= plan.placed
        decisions += 1
    }
}
let elapsed = clock.now - start
let cpu = threadCPUSeconds() - cpuStart
let secs = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
precondition(placed == decisions, "every plan should place its replica")
print("decisions/s \(Int(Double(decisions) / secs)) cpu \(Int(Double(decisions) / cpu))")
