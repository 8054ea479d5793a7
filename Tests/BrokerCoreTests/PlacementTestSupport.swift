import XCTest
@testable import BrokerCore

// Plain-value builders for the placement tests.

func mkRegion(
    _ id: String, primary: Bool = false, kind: RegionKind = .serverless, state: RegionState = .active,
    labels: [String: String] = [:], vSwitches: [String] = ["vsw-a", "vsw-b"]
) -> Region {
    Region(id: id, kind: kind, primary: primary, vpcId: "vpc-\(id)", vSwitchIds: vSwitches,
           securityGroupId: "sg-\(id)", labels: labels, state: state)
}

func gpuPool(
    _ id: String, _ region: String, series: String = "T4", memory: Double = 16, gpus: Int = 1,
    cpu: Double = 8, memoryGiB: Double = 32, type: String? = nil, capacity: Int = 10, price: Double = 1.0,
    qos: [QoS] = QoS.allCases, allocated: Int = 0, idle: Int = 0
) -> PoolUsage {
    PoolUsage(
        pool: Pool(id: id, regionId: region, computeClass: .gpu, qos: qos, gpuSeries: series, gpuMemoryGiB: memory,
                   gpusPerInstance: gpus, cpu: cpu, memoryGiB: memoryGiB, instanceType: type ?? "ecs.\(id)",
                   capacity: capacity, pricePerHour: price),
        allocated: allocated, idle: idle)
}

func cpuPool(
    _ id: String, _ region: String, computeClass: ComputeClass = .generalPurpose, cpu: Double = 2,
    memoryGiB: Double = 4, type: String? = nil, capacity: Int = 10, price: Double = 0.1,
    qos: [QoS] = QoS.allCases, allocated: Int = 0, idle: Int = 0
) -> PoolUsage {
    PoolUsage(
        pool: Pool(id: id, regionId: region, computeClass: computeClass, qos: qos, cpu: cpu, memoryGiB: memoryGiB,
                   instanceType: type ?? "ecs.\(id)", capacity: capacity, pricePerHour: price),
        allocated: allocated, idle: idle)
}

func inv(_ region: Region, _ pools: [PoolUsage]) -> RegionInventory {
    RegionInventory(region: region, pools: pools)
}

let t4Shape = ComputeShape(computeClass: .gpu, gpuSeries: ["T4"], gpuCount: 1, cpu: 4, memoryGiB: 16)
let cpuShape = ComputeShape(computeClass: .generalPurpose, cpu: 2, memoryGiB: 4)

extension PlacementPlan {
    /// Replicas per region, in placement order of first appearance.
    var byRegion: [String: Int] {
        placements.reduce(into: [:]) { $0[$1.region, default: 0] += $1.count }
    }
    func decision(_ region: String) -> PlacementDecision? {
        decisions.first { $0.region == region }
    }
    var decisionRegions: [String] { decisions.map(\.region) }
}

