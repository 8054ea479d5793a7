import BrokerCore
import BrokerStore
import Foundation
import MicroHTTP

struct SizingAnswer: Encodable {
    struct RegionReplicas: Encodable {
        var region: String
        var availableReplicas: Int
    }
    struct Candidate: Encodable {
        var gpuSeries: String
        var gpuMemoryGiB: Double
        var gpusNeeded: Int
        var regions: [RegionReplicas]
    }
    var weightsGiB: Double
    var kvCacheGiB: Double
    var requiredGiB: Double
    var candidates: [Candidate]
}

/// GPU memory a model needs, and which series in live inventory can hold it.
enum SizingRoutes {
    static func register(_ routes: inout RouteBuilder) {
        routes.add("POST", "/v1/sizing") { request, context in
            let model = try SizingRequest.parse(try JSONBodies.read(request))
            let sized = ModelSizing.size(model)
            let inventory = try await context.services.inventory.inventory()
            return try JSONBodies.response(200, answer(sized, inventory))
        }
    }

    static func answer(_ sized: SizingResult, _ inventory: [RegionInventory]) -> SizingAnswer {
        var series: [String: Double] = [:]
        for region in inventory {
            for usage in region.pools where usage.pool.computeClass == .gpu {
                if let name = usage.pool.gpuSeries, let memory = usage.pool.gpuMemoryGiB {
                    series[name] = max(series[name] ?? 0, memory)
                }
            }
        }
        let candidates = series.map { name, memory -> SizingAnswer.Candidate in
            let needed = ModelSizing.gpusNeeded(requiredGiB: sized.requiredGiB, gpuMemoryGiB: memory)
            let shape = ComputeShape(
                computeClass: .gpu, gpuSeries: [name], gpuCount: needed, cpu: .leastNonzeroMagnitude,
                memoryGiB: .leastNonzeroMagnitude)
            let regions = PlacementPlanner.defaultRegionOrder(shape, inventory).map {
                SizingAnswer.RegionReplicas(
                    region: $0.region.id, availableReplicas: PlacementPlanner.replicasAvailable(shape, in: $0))
            }
            return .init(gpuSeries: name, gpuMemoryGiB: memory, gpusNeeded: needed, regions: regions)
        }
        return SizingAnswer(
            weightsGiB: rounded(sized.weightsGiB), kvCacheGiB: rounded(sized.kvCacheGiB),
            requiredGiB: rounded(sized.requiredGiB),
            candidates: candidates.sorted {
                ($0.gpusNeeded, $0.gpuMemoryGiB, $0.gpuSeries) < ($1.gpusNeeded, $1.gpuMemoryGiB, $1.gpuSeries)
            })
    }

    static func rounded(_ value: Double) -> Double { (value * 100).rounded() / 100 }
}
