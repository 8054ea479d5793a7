import BrokerCore
import BrokerStore
import Foundation
import Logging

/// Example inventory drawn from the seed documents: a primary region in Beijing,
/// two more serverless regions, an on-premises data center, GPU pools of real series
/// and general-purpose pools. Seeding again leaves existing regions and pools alone.
enum DemoData {
    static let regions: [Region] = [
        Region(
            id: "cn-beijing", displayName: "China (Beijing)", kind: .serverless, primary: true,
            vpcId: "vpc-2zeghwzptn5zii0w7****", vSwitchIds: ["vsw-2zeaxa8ob0n6k0l4w****", "vsw-2ze1tz3lf8yl9wn5w****"],
            securityGroupId: "sg-2ze0b9o8pjjzts4h****", labels: ["geo": "north"]),
        Region(
            id: "cn-hangzhou", displayName: "China (Hangzhou)", kind: .serverless,
            vpcId: "vpc-bp1kd7yn4qnrvdxh6****", vSwitchIds: ["vsw-bp1ddbrxdlrcbim46****"],
            securityGroupId: "sg-bp1dktddjsg5nktv****", labels: ["geo": "east"]),
        Region(
            id: "cn-zhangjiakou", displayName: "China (Zhangjiakou)", kind: .serverless,
            vpcId: "vpc-8vbpk5rkg1p1dn6ce****", vSwitchIds: ["vsw-8vbhy5kcglrqkbz5r****", "vsw-8vb6ekg1y8uvdl2jn****"],
            securityGroupId: "sg-8vb3lxkgfkfgr1l0****", labels: ["geo": "north"]),
        Region(
            id: "idc-shanghai", displayName: "Shanghai data center", kind: .onPremises,
            vpcId: "vpc-idc-shanghai", vSwitchIds: ["vsw-idc-rack-a", "vsw-idc-rack-b"],
            securityGroupId: "sg-idc-shanghai", labels: ["geo": "east", "site": "idc"]),
    ]

    static let pools: [Pool] = [
        gpu("cn-beijing", "t4", "T4", 16, cpu: 4, memory: 15, type: "ecs.gn6i-c4g1.xlarge", capacity: 10, price: 1.28),
        gpu("cn-beijing", "a10", "A10", 24, cpu: 8, memory: 30, type: "ecs.gn7i-c8g1.2xlarge", capacity: 8, price: 2.43),
        gpu("cn-beijing", "l20", "L20", 48, cpu: 16, memory: 120, type: "ecs.gn8is.4xlarge", capacity: 4, price: 6.10),
        cpu("cn-beijing", "g8i-2c8g", cpu: 2, memory: 8, type: "ecs.g8i.large", capacity: 200, price: 0.09),
        gpu("cn-hangzhou", "a10", "A10", 24, cpu: 8, memory: 30, type: "ecs.gn7i-c8g1.2xlarge", capacity: 16, price: 2.31),
        gpu("cn-hangzhou", "h100", "H100", 80, gpus: 8, cpu: 192, memory: 1024, type: "ecs.gn8v-8x.48xlarge", capacity: 2, price: 98.0,
            partitions: ["1g.10gb", "2g.20gb", "3g.40gb", "7g.80gb"], interconnect: ["nvlink", "erdma"]),
        // Other vendors' accelerators: a request for nvidia.com/gpu never lands here.
        gpu("cn-hangzhou", "mi300x", "MI300X", 192, gpus: 8, cpu: 128, memory: 2048, type: "ecs.mi300x-8x", capacity: 2, price: 60.0),
        gpu("cn-zhangjiakou", "gaudi2", "Gaudi2", 96, gpus: 8, cpu: 160, memory: 1024, type: "ecs.gaudi2-8x", capacity: 2, price: 40.0),
        gpu("cn-zhangjiakou", "inf2", "Inferentia2", 32, gpus: 6, cpu: 96, memory: 384, type: "ecs.inf2-6x", capacity: 4, price: 6.5),
        cpu("cn-hangzhou", "g8i-4c16g", cpu: 4, memory: 16, type: "ecs.g8i.xlarge", capacity: 100, price: 0.18),
        gpu("cn-zhangjiakou", "t4", "T4", 16, cpu: 4, memory: 15, type: "ecs.gn6i-c4g1.xlarge", capacity: 20, price: 1.12),
        gpu("cn-zhangjiakou", "l20", "L20", 48, cpu: 16, memory: 120, type: "ecs.gn8is.4xlarge", capacity: 6, price: 5.80),
        cpu("idc-shanghai", "rack-2c4g", cpu: 2, memory: 4, type: "idc.2c4g", capacity: 3, price: 0),
        gpu("idc-shanghai", "a10", "A10", 24, cpu: 8, memory: 32, type: "idc.a10.8c32g", capacity: 2, price: 0),
    ]

    static func seed(inventory: InventoryStore, tenants: TenantStore, directory: String, logger: Logger) async throws {
        let existing = Set(try await inventory.regions().map(\.id))
        for region in regions where !existing.contains(region.id) {
            _ = try await inventory.createRegion(region)
        }
        let existingPools = Set(try await inventory.inventory().flatMap { $0.pools.map { "\($0.pool.regionId)/\($0.pool.id)" } })
        for pool in pools where !existingPools.contains("\(pool.regionId)/\(pool.id)") {
            _ = try await inventory.putPool(pool)
        }
        let token = try await demoToken(tenants, file: SecretFile(directory: directory, name: "demo-token"))
        logger.notice("demo data ready", metadata: [
            "regions": "\(regions.count)", "pools": "\(pools.count)", "demo.token": "\(token)",
            "path": "\(directory)/demo-token",
        ])
    }

    /// Tokens are stored only as hashes: the demo tenant's is kept in the data directory,
    /// so it stays the same across restarts (a saved `gpubroker login` keeps working); a new
    /// one is issued only when that file does not hold the demo tenant's current token.
    private static func demoToken(_ tenants: TenantStore, file: SecretFile) async throws -> String {
        let demo = try await tenants.list().first { $0.name == "demo" }
        if let demo, let kept = file.read(), try await tenants.authenticate(token: kept)?.id == demo.id {
            return kept
        }
        let token = if let demo {
            try await tenants.rotateToken(id: demo.id.uuid).token
        } else {
            try await tenants.create(name: "demo", quota: TenantQuota()).token
        }
        try file.write(token)
        return token
    }

    private static func gpu(
        _ region: String, _ id: String, _ series: String, _ memory: Double, gpus: Int = 1, cpu: Double,
        memory instanceMemory: Double, type: String, capacity: Int, price: Double, partitions: [String] = [],
        interconnect: [String] = []
    ) -> Pool {
        // The vendor: inferred from the model (`Pool.init`).
        Pool(
            id: id, regionId: region, computeClass: .gpu, gpuSeries: series, gpuMemoryGiB: memory,
            gpusPerInstance: gpus, gpuPartitions: partitions, gpuInterconnect: interconnect, cpu: cpu,
            memoryGiB: instanceMemory, instanceType: type, capacity: capacity, pricePerHour: price)
    }

    private static func cpu(_ region: String, _ id: String, cpu: Double, memory: Double, type: String, capacity: Int, price: Double) -> Pool {
        Pool(
            id: id, regionId: region, computeClass: .generalPurpose, cpu: cpu, memoryGiB: memory, instanceType: type,
            capacity: capacity, pricePerHour: price)
    }
}
