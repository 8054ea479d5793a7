import JSON
import XCTest

@testable import BrokerCore

/// Over seeded random inventories of every vendor and random pods in the world's
/// spellings: a pod that asks for an accelerator is never placed on a pool without one,
/// and a vendor's resource name never on another vendor's pool.
final class AcceleratorPropertyTests: XCTestCase {
    /// Models of every vendor, and one the broker does not know (vendor `other`).
    static let models: [(series: String, memory: Double)] = [
        ("T4", 16), ("A10", 24), ("A100", 80), ("MI300X", 192), ("Gaudi2", 96), ("Inferentia2", 32), ("TPUv5e", 16),
        ("Custom9", 48),
    ]

    /// Resource names, annotations and selectors a pod may use, with the vendor each means.
    static let spellings: [(limits: [String: JSONValue], annotations: [String: JSONValue], selector: [String: JSONValue], vendor: AcceleratorVendor)] = [
        (["nvidia.com/gpu": 1], [:], [:], .nvidia),
        (["nvidia.com/gpu": 2], [:], ["cloud.google.com/gke-accelerator": "nvidia-tesla-t4"], .nvidia),
        (["nvidia.com/gpu": 1], [:], ["nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"], .nvidia),
        (["nvidia.com/mig-1g.10gb": 1], [:], [:], .nvidia),
        (["aliyun.com/gpu-mem": 8], [:], [:], .nvidia),
        (["nvidia.com/gpumem": 4000], [:], [:], .nvidia),
        ([:], ["gpu-fraction": "0.5"], [:], .nvidia),
        (["amd.com/gpu": 1], [:], [:], .amd),
        (["habana.ai/gaudi": 1], [:], [:], .intel),
        (["aws.amazon.com/neuroncore": 2], [:], [:], .aws),
        (["aws.amazon.com/neuron": 1], [:], ["karpenter.k8s.aws/instance-family": "inf2"], .aws),
        (["google.com/tpu": 4], [:], [:], .google),
        ([:], [:], ["nvidia.com/gpu.present": "true"], .nvidia),
    ]

    static func randomInventory(_ rng: inout SplitMix64) -> [RegionInventory] {
        (0..<Int.random(in: 1...3, using: &rng)).map { r in
            let id = "r\(r)"
            let pools: [PoolUsage] = (0..<Int.random(in: 1...6, using: &rng)).map { p in
                let type = "type-\(Int.random(in: 0..<6, using: &rng))"
                guard Int.random(in: 0..<3, using: &rng) > 0 else {
                    return cpuPool("\(id)-p\(p)", id, cpu: 64, memoryGiB: 256, type: type, capacity: 8)
                }
                let model = models.randomElement(using: &rng)!
                var usage = gpuPool("\(id)-p\(p)", id, series: model.series, memory: model.memory,
                                    gpus: [1, 2, 8].randomElement(using: &rng)!, cpu: 64, memoryGiB: 256, type: type, capacity: 8)
                if Bool.random(using: &rng) { usage.pool.gpuPartitions = ["1g.10gb", "3g.40gb"] }
                return usage
            }
            return inv(mkRegion(id, primary: r == 0), pools)
        }
    }

    func testAcceleratorsAreOnlyGrantedOnTheirVendorsPools() throws {
        var rng = SplitMix64(seed: 2026)
        var placed = 0, refused = 0
        for _ in 0..<3000 {
            let inventory = Self.randomInventory(&rng)
            let catalog = InstanceCatalog(pools: inventory.flatMap { $0.pools.map(\.pool) })
            let spelling = Self.spellings.randomElement(using: &rng)!
            var limits = spelling.limits
            limits["cpu"] = .number(Double(Int.random(in: 1...8, using: &rng)))
            var annotations = spelling.annotations
            // An instance type to try first, possibly a CPU type: it must not win over the accelerator.
            if Bool.random(using: &rng) {
                annotations["k8s.aliyun.com/eci-use-specs"] = .string("type-\(Int.random(in: 0..<6, using: &rng))")
            }
            let pod: JSONValue = [
                "apiVersion": "v1", "kind": "Pod", "metadata": ["name": "p", "annotations": .object(annotations)],
                "spec": ["containers": [["name": "c", "image": "x", "resources": ["limits": .object(limits)]]],
                         "nodeSelector": .object(spelling.selector)],
            ]
            guard let translation = try? ManifestTranslator.plan([pod], catalog: catalog).workloads[0] else {
                refused += 1
                continue
            }
            for request in translation.requests {
                let input = PlacementInput(
                    shape: request.shape, replicas: 1, pinnedRegion: nil, policy: nil, allOrNothing: true, inventory: inventory)
                let plan = PlacementPlanner.plan(input)
                for placement in plan.placements {
                    let pool = inventory.flatMap(\.pools).first { $0.pool.id == placement.poolId }!.pool
                    XCTAssertEqual(pool.computeClass, .gpu, "\(pod) placed on \(pool.id)")
                    XCTAssertEqual(pool.gpuVendor, spelling.vendor, "\(pod) placed on \(pool.gpuSeries ?? "")")
                    placed += 1
                }
                if !plan.placements.isEmpty { break }
            }
        }
        // Both outcomes happen: the property is not vacuous.
        XCTAssertGreaterThan(placed, 500)
        XCTAssertGreaterThan(refused, 100)
    }
}
