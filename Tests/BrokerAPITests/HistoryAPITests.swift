import BrokerCore
import Foundation
import JSON
import TestSupport
import XCTest

/// `GET /v1/history/running`: running instances over time from the ledger, a tenant's
/// own or (admin) everyone's.
final class HistoryAPITests: XCTestCase {
    var broker: TestBroker!

    override func setUp() async throws {
        broker = try TestBroker()
        try await broker.region("east", primary: true)
        try await broker.region("west")
        try await broker.pool("east", "t4", series: "T4", capacity: 4, defer: 600)
        try await broker.pool("west", "t4", series: "T4", capacity: 10)
        try await broker.pool("west", "cpu", capacity: 10)
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    func gpu(_ replicas: Int) -> JSONValue {
        ["computeClass": "gpu", "gpuSeries": ["T4"], "gpuCount": 1, "cpu": 4, "memoryGiB": 16, "replicas": .number(Double(replicas))]
    }

    /// The last count of each key: what runs now.
    func now(_ answer: JSONValue, _ group: String) -> [String: Int] {
        var result: [String: Int] = [:]
        for series in answer[group]!.array { result[series["key"]!.string!] = series["running"]!.array.last?.int }
        return result
    }

    func testCountsRunningInstancesPerRegionAndSeriesForTheCaller() async throws {
        let alice = try await broker.tenant("alice").token
        let bob = try await broker.tenant("bob").token
        // alice: 6 T4 (4 east, 2 west), then one released (scale-in: east or west, idle or not)
        let first = try await broker.call("POST", "/v1/allocations", token: alice, json: gpu(6))
        XCTAssertEqual(first.status, 201)
        let scaled = try await broker.call(
            "PATCH", "/v1/allocations/\(first.json["id"]!.string!)", token: alice, json: ["replicas": 5])
        XCTAssertEqual(scaled.status, 200)
        let released = try await broker.call("POST", "/v1/allocations", token: alice, json: gpu(1))
        _ = try await broker.call("DELETE", "/v1/allocations/\(released.json["id"]!.string!)", token: alice)
        // bob: 3 CPU instances in west (no GPU series)
        let cpu = try await broker.call(
            "POST", "/v1/allocations", token: bob,
            json: ["computeClass": "general-purpose", "cpu": 1, "memoryGiB": 2, "replicas": 3])
        XCTAssertEqual(cpu.status, 201)

        let placed = first.json["instances"]!.array.filter { $0["state"] == "running" }
        XCTAssertEqual(placed.count, 6)
        let mine = try await broker.call("GET", "/v1/history/running", token: alice)
        XCTAssertEqual(mine.status, 200)
        let byRegion = now(mine.json, "byRegion")
        XCTAssertEqual(byRegion.values.reduce(0, +), 5, "\(mine.text)")
        XCTAssertEqual(now(mine.json, "byGpuSeries"), ["T4": 5])
        XCTAssertEqual(mine.json["stepSeconds"]?.int, 900)
        for series in mine.json["byRegion"]!.array {
            XCTAssertEqual(series["running"]!.array.count, 97)
            XCTAssertEqual(series["running"]!.array.first?.int, 0, "nothing ran 24 hours ago")
        }
        let running = try await broker.call("GET", "/v1/allocations/\(first.json["id"]!.string!)", token: alice)
        var live: [String: Int] = [:]
        for instance in running.json["instances"]!.array where instance["state"] == "running" {
            live[instance["region"]!.string!, default: 0] += 1
        }
        XCTAssertEqual(byRegion, live)

        let theirs = try await broker.call("GET", "/v1/history/running?hours=1", token: bob)
        XCTAssertEqual(now(theirs.json, "byRegion"), ["west": 3])
        XCTAssertEqual(theirs.json["byGpuSeries"]!.array.count, 0, "CPU pools have no series")
        XCTAssertEqual(theirs.json["stepSeconds"]?.numberValue, 37.5)

        let everyone = try await broker.call("GET", "/v1/history/running", token: broker.adminToken)
        XCTAssertEqual(now(everyone.json, "byRegion").values.reduce(0, +), 8)
        XCTAssertEqual(now(everyone.json, "byGpuSeries"), ["T4": 5])
    }

    func testRefusesABadWindowOrParameter() async throws {
        let token = try await broker.tenant().token
        for query in ["hours=0", "hours=169", "hours=x", "days=1"] {
            let answer = try await broker.call("GET", "/v1/history/running?\(query)", token: token)
            XCTAssertEqual(answer.status, 422, query)
            XCTAssertEqual(answer.json["code"], "validation_failed", query)
        }
        let anonymous = try await broker.call("GET", "/v1/history/running")
        XCTAssertEqual(anonymous.status, 401)
    }
}
