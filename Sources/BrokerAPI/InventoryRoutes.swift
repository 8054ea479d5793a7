import BrokerCore
import BrokerStore
import Foundation
import MicroHTTP
import Synchronization

/// A pool as the API shows it: the report plus what is in use now.
struct PoolView: Encodable {
    var usage: PoolUsage

    enum CodingKeys: String, CodingKey {
        case id, region, computeClass, qos, gpuSeries, gpuVendor, gpuMemoryGiB, gpusPerInstance, gpuPartitions
        case gpuInterconnect, cpu, memoryGiB
        case instanceType, capacity, pricePerHour, deferScaleInSeconds, allocated, idle, available, overcommitted
    }

    func encode(to encoder: any Encoder) throws {
        let pool = usage.pool
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(pool.id, forKey: .id)
        try c.encode(pool.regionId, forKey: .region)
        try c.encode(pool.computeClass, forKey: .computeClass)
        try c.encode(pool.qos, forKey: .qos)
        try c.encodeIfPresent(pool.gpuSeries, forKey: .gpuSeries)
        try c.encodeIfPresent(pool.gpuVendor, forKey: .gpuVendor)
        try c.encodeIfPresent(pool.gpuMemoryGiB, forKey: .gpuMemoryGiB)
        try c.encodeIfPresent(pool.gpusPerInstance, forKey: .gpusPerInstance)
        if pool.computeClass == .gpu {
            try c.encode(pool.gpuPartitions, forKey: .gpuPartitions)
            try c.encode(pool.gpuInterconnect, forKey: .gpuInterconnect)
        }
        try c.encode(pool.cpu, forKey: .cpu)
        try c.encode(pool.memoryGiB, forKey: .memoryGiB)
        try c.encode(pool.instanceType, forKey: .instanceType)
        try c.encode(pool.capacity, forKey: .capacity)
        try c.encode(pool.pricePerHour, forKey: .pricePerHour)
        try c.encode(pool.deferScaleInSeconds, forKey: .deferScaleInSeconds)
        try c.encode(usage.allocated, forKey: .allocated)
        try c.encode(usage.idle, forKey: .idle)
        try c.encode(usage.available, forKey: .available)
        try c.encode(usage.overcommitted, forKey: .overcommitted)
    }
}

struct RegionInventoryView: Encodable {
    var region: String
    var pools: [PoolView]
}

struct ShapeAvailability: Encodable {
    var region: String
    var availableReplicas: Int
    var bestPool: String?
    var pricePerHour: Double?
}

/// `GET /v1/inventory` answers by query, for the latest inventory snapshot only: an
/// answer follows from the query and the snapshot alone, and parsing the query and
/// writing the answer took most of the request's time while the snapshot is reused
/// by every request for 50 ms. Refused queries are not kept (they are answered anew).
final class AvailabilityAnswers: Sendable {
    private struct State {
        var serial = Int.min
        var bodies: [[String: String]: [UInt8]] = [:]
    }

    private let state = Mutex(State())
    /// Distinct queries kept per snapshot; more start the set over.
    static let maxQueries = 256

    func body(
        for query: [String: String], snapshot serial: Int, answer: () throws -> [UInt8]
    ) throws -> [UInt8] {
        if let kept = state.withLock({ $0.serial == serial ? $0.bodies[query] : nil }) { return kept }
        let body = try answer()
        state.withLock { state in
            if serial > state.serial { state = State(serial: serial) }
            guard serial == state.serial else { return }  // an older snapshot's answer
            if state.bodies.count >= Self.maxQueries { state.bodies.removeAll(keepingCapacity: true) }
            state.bodies[query] = body
        }
        return body
    }
}

/// Regions and pools: admins write them, every token reads them.
enum InventoryRoutes {
    static func register(_ routes: inout RouteBuilder) {
        routes.add("POST", "/v1/admin/regions") { request, context in
            let region = try RegionSpec.parse(try JSONBodies.read(request))
            let created = try await context.services.inventory.createRegion(region)
            return try JSONBodies.response(201, created, headers: [("Location", "/v1/regions/\(created.id)")])
        }
        routes.add("PUT", "/v1/admin/regions/{id}") { request, context in
            let id = request.pathParameters["id"]!
            let region = try RegionSpec.parse(try JSONBodies.read(request), pathId: id)
            return try JSONBodies.response(200, try await context.services.inventory.replaceRegion(region))
        }
        routes.add("DELETE", "/v1/admin/regions/{id}") { request, context in
            try await context.services.inventory.deleteRegion(id: request.pathParameters["id"]!)
            return JSONBodies.noContent()
        }
        routes.add("PUT", "/v1/admin/regions/{id}/pools/{poolId}") { request, context in
            let pool = try PoolSpec.parse(
                try JSONBodies.read(request), regionId: request.pathParameters["id"]!,
                poolId: request.pathParameters["poolId"]!)
            let (usage, created) = try await context.services.inventory.putPool(pool)
            return try JSONBodies.response(created ? 201 : 200, PoolView(usage: usage))
        }
        routes.add("DELETE", "/v1/admin/regions/{id}/pools/{poolId}") { request, context in
            try await context.services.inventory.deletePool(
                regionId: request.pathParameters["id"]!, poolId: request.pathParameters["poolId"]!)
            return JSONBodies.noContent()
        }
        routes.add("GET", "/v1/regions") { request, context in
            let query = try PageQuery.parse(request.query)
            let page = try await context.services.inventory.regions(limit: query.limit, after: query.cursor)
            return try JSONBodies.response(200, ListPage(name: "regions", page: page))
        }
        routes.add("GET", "/v1/regions/{id}") { request, context in
            try JSONBodies.response(200, try await context.services.inventory.region(id: request.pathParameters["id"]!))
        }
        routes.add("GET", "/v1/regions/{id}/inventory") { request, context in
            let found = try await context.services.inventory.inventory(regionId: request.pathParameters["id"]!)
            return try JSONBodies.response(
                200, RegionInventoryView(region: found.region.id, pools: found.pools.map(PoolView.init)))
        }
        let answers = AvailabilityAnswers()
        routes.add("GET", "/v1/inventory") { request, context in
            let snapshot: InventorySnapshot
            do {
                snapshot = try await context.services.inventory.recentInventory()
            } catch {
                _ = try InventoryQuery.parse(request.query)  // a refused query says so, database or not
                throw error
            }
            let body = try answers.body(for: request.query, snapshot: snapshot.serial) {
                let (shape, sort) = try InventoryQuery.parseSorted(request.query)
                let answer = snapshot.inventory.availability(shape, sort: sort).map {
                    ShapeAvailability(
                        region: $0.region, availableReplicas: $0.availableReplicas, bestPool: $0.bestPool,
                        pricePerHour: $0.pricePerHour)
                }
                return try JSONBodies.encode(["regions": answer])
            }
            return JSONBodies.response(200, encoded: body)
        }
    }
}
