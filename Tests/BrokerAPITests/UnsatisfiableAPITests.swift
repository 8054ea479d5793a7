import Foundation
import JSON
import TestSupport
import XCTest

/// A request no current pool could ever hold is told so, instead of queueing silently
/// until its deadline.
final class UnsatisfiableAPITests: XCTestCase {
    var broker: TestBroker!

    override func setUp() async throws {
        broker = try TestBroker()
        try await broker.region("r1", primary: true)
        try await broker.region("r2", state: "cordoned")
        try await broker.pool("r1", "t4", series: "T4", gpuMemory: 16, capacity: 2)
        try await broker.pool("r2", "t4", series: "T4", gpuMemory: 16, capacity: 3)
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func request(_ series: String, replicas: Int, queue: Bool = false, region: String? = nil) -> JSONValue {
        var body: [String: JSONValue] = [
            "computeClass": "gpu", "gpuSeries": [.string(series)], "gpuCount": 1, "cpu": 4, "memoryGiB": 16,
            "replicas": .number(Double(replicas)), "queue": .bool(queue),
        ]
        if let region { body["region"] = .string(region) }
        return .object(body)
    }

    func neverReason(_ response: TestBroker.Response) -> String? {
        response.json["decisions"]?.array.first { $0["region"] == "*" }?["reason"]?.string
    }

    func testASeriesNoPoolOffersIsRefusedOrQueuedWithTheReason() async throws {
        let token = try await broker.tenant().token
        let refused = try await broker.call("POST", "/v1/allocations", token: token, json: request("V100", replicas: 1))
        XCTAssertEqual(refused.status, 409, refused.text)
        let reason = "unsatisfiable: no pool in any region offers this shape (class gpu, series V100, 1 GPU, 4 CPU, 16 GiB)"
        XCTAssertEqual(neverReason(refused), reason)
        XCTAssertTrue(refused.json["detail"]?.string?.contains(reason) == true, refused.text)

        let queued = try await broker.call("POST", "/v1/allocations", token: token, json: request("V100", replicas: 1, queue: true))
        XCTAssertEqual(queued.status, 202, queued.text)
        XCTAssertEqual(neverReason(queued), reason)
        let read = try await broker.call("GET", "/v1/allocations/\(queued.json["id"]!.string!)", token: token)
        XCTAssertEqual(neverReason(read), reason, "the reason stays on the pending allocation")
    }

    func testMoreReplicasThanTheWholeFleetHoldsAreTold() async throws {
        let token = try await broker.tenant().token
        // The cordoned region's three count: it may be uncordoned.
        let tooMany = try await broker.call("POST", "/v1/allocations", token: token, json: request("T4", replicas: 6, queue: true))
        XCTAssertEqual(tooMany.status, 202, tooMany.text)
        XCTAssertEqual(neverReason(tooMany), "unsatisfiable: 6 replicas requested, but the pools of this shape in any region hold 5 in all")
        let pinned = try await broker.call("POST", "/v1/allocations", token: token, json: request("T4", replicas: 3, region: "r1"))
        XCTAssertEqual(pinned.status, 409, pinned.text)
        XCTAssertEqual(neverReason(pinned), "unsatisfiable: 3 replicas requested, but the pools of this shape in region r1 hold 2 in all")
        // Waiting for capacity that exists is no such case.
        let fits = try await broker.call("POST", "/v1/allocations", token: token, json: request("T4", replicas: 2))
        XCTAssertEqual(fits.status, 201, fits.text)
        let waits = try await broker.call("POST", "/v1/allocations", token: token, json: request("T4", replicas: 2, queue: true))
        XCTAssertEqual(waits.status, 202, waits.text)
        XCTAssertNil(neverReason(waits), waits.text)
    }
}
