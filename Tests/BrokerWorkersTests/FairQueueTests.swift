import BrokerStore
import Foundation
import JSON
import TestSupport
import XCTest

/// Issue 28: the pending admitter admits by weighted dominant share before age, and a
/// request starving past the limit holds the pools it waits for until it fits. Real
/// database, real HTTP; the admitter's passes are run by hand, so nothing depends on time
/// except the starvation limit, which is 0 (starving at once) or an hour (never).
final class FairQueueTests: XCTestCase {
    var broker: TestBroker!

    override func setUp() async throws {
        broker = try await TestBroker.withFourT4()
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func release(_ id: String, _ token: String) async throws {
        let response = try await broker.call("DELETE", "/v1/allocations/\(id)", token: token)
        XCTAssertEqual(response.status, 200, response.text)
    }

    /// A holds all 4 GPUs (over its share) and queues one more; B, holding nothing, queues
    /// one later. When a GPU frees, B's newer request goes first, and the queue position
    /// already said so.
    func testTheLowerShareIsAdmittedBeforeTheOlderRequest() async throws {
        let maintenance = MaintenanceStore(pool: broker.pool, starvationLimit: .seconds(3600))
        let a = try await broker.tenant("a").token
        let b = try await broker.tenant("b").token
        var held: [String] = []
        for _ in 0..<4 { held.append(try await broker.queueT4(a, expect: 201)) }
        let older = try await broker.queueT4(a, expect: 202)
        let newer = try await broker.queueT4(b, expect: 202)

        let bQueue = try await broker.call("GET", "/v1/allocations/\(newer)/queue", token: b)
        XCTAssertEqual(bQueue.json["position"], 1, bQueue.text)
        let aQueue = try await broker.call("GET", "/v1/allocations/\(older)/queue", token: a)
        XCTAssertEqual(aQueue.json["position"], 2, aQueue.text)

        try await release(held[0], a)
        let pass = try await maintenance.admitPending()
        XCTAssertEqual(pass.admitted, 1)
        let newerStatus = try await broker.status(newer, b)
        let olderStatus = try await broker.status(older, a)
        XCTAssertEqual(newerStatus, "active")
        XCTAssertEqual(olderStatus, "pending")
    }

    /// B's 4-GPU gang waits behind a stream of A's 1-GPU requests. Without the guard each
    /// freed GPU goes to a 1-GPU request that fits; with the gang starving, the freed GPUs
    /// stay free until all four are, then the gang is admitted.
    func testAStarvingGangHoldsFreedCapacityUntilItFits() async throws {
        let a = try await broker.tenant("a").token
        let b = try await broker.tenant("b").token
        var held: [String] = []
        for _ in 0..<4 { held.append(try await broker.queueT4(a, expect: 201)) }
        let gang = try await broker.queueT4(b, replicas: 4, expect: 202)
        var stream: [String] = []
        for _ in 0..<4 { stream.append(try await broker.queueT4(a, expect: 202)) }

        let patient = MaintenanceStore(pool: broker.pool, starvationLimit: .seconds(3600))
        try await release(held.removeFirst(), a)
        let unguarded = try await patient.admitPending()
        XCTAssertEqual(unguarded.admitted, 1, "without the guard, a 1-GPU request takes the freed GPU")
        held.append(stream.removeFirst())

        let guarded = MaintenanceStore(pool: broker.pool, starvationLimit: .zero)
        for (index, id) in held.enumerated() {
            try await release(id, a)
            let pass = try await guarded.admitPending()
            let gangStatus = try await broker.status(gang, b)
            if index < held.count - 1 {
                XCTAssertEqual(pass.admitted, 0, "GPU \(index + 1) freed: held for the gang, not given to the stream")
                XCTAssertEqual(gangStatus, "pending")
                let inventory = try await broker.call("GET", "/v1/regions/a/inventory", token: a)
                XCTAssertEqual(inventory.json["pools"]?[0]?["available"], .number(Double(index + 1)), inventory.text)
            } else {
                XCTAssertEqual(pass.admitted, 1)
                XCTAssertEqual(gangStatus, "active", "all four freed: the gang is admitted")
            }
        }
        for id in stream {
            let streamStatus = try await broker.status(id, a)
            XCTAssertEqual(streamStatus, "pending")
        }
    }
}
