import BrokerCore
import Foundation
import JSON
import TestSupport
import XCTest

/// The ledger's first promise, shown rather than argued: many clients on two brokers
/// sharing one database never get more than the pools hold.
final class ConcurrencyTests: XCTestCase {
    func testSixtyFourClientsOnTwoBrokersGetExactlyTheCapacity() async throws {
        let first = try TestBroker()
        let second = try TestBroker(databaseURL: first.databaseURL)
        let token = try await first.tenant().token
        try await first.region("a")
        try await first.region("b")
        try await first.pool("a", "small", cpu: 2, memory: 4, capacity: 30, price: 1)
        try await first.pool("a", "large", cpu: 4, memory: 8, capacity: 30, price: 2)
        try await first.pool("b", "small", cpu: 2, memory: 4, capacity: 40, price: 1)
        let body: JSONValue = ["computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 1]

        let statuses = try await withThrowingTaskGroup(of: [Int].self) { group in
            for client in 0..<64 {
                let broker = client.isMultiple(of: 2) ? first : second
                group.addTask {
                    var seen: [Int] = []
                    for _ in 0..<3 {
                        seen.append(try await broker.call("POST", "/v1/allocations", token: token, json: body).status)
                    }
                    return seen
                }
            }
            return try await group.reduce(into: [Int]()) { $0 += $1 }
        }
        XCTAssertEqual(statuses.filter { $0 == 201 }.count, 100, "granted")
        XCTAssertEqual(statuses.filter { $0 == 409 }.count, 92, "refused")
        let problems = try await LedgerCheck.run(first)
        XCTAssertEqual(problems, [])
        // Every pool is full, and all three are there: a loop over an empty list asserts nothing.
        var allocated: [String: Int] = [:]
        for region in ["a", "b"] {
            let inventory: Answers.RegionInventory =
                try await first.call("GET", "/v1/regions/\(region)/inventory", token: token).decode()
            for pool in inventory.pools { allocated["\(region)/\(pool.id)"] = pool.allocated }
        }
        XCTAssertEqual(allocated, ["a/small": 30, "a/large": 30, "b/small": 40])
        await second.stop()
        await first.stop()
    }

    func testChurnOfGrantsScalingAndReleasesKeepsTheLedgerConsistent() async throws {
        let first = try TestBroker()
        let second = try TestBroker(databaseURL: first.databaseURL)
        let token = try await first.tenant().token
        try await first.region("a")
        try await first.region("b", kind: "on-premises")
        try await first.pool("a", "cpu", cpu: 2, memory: 4, capacity: 25, defer: 0)
        try await first.pool("b", "cpu", cpu: 2, memory: 4, capacity: 15)
        let body: JSONValue = [
            "computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4, "replicas": 2, "allOrNothing": false,
            "placement": ["units": [["regions": ["b"], "max": 2], ["regions": ["*"]]]],
        ]
        let statuses = try await withThrowingTaskGroup(of: [Int].self) { group in
            for client in 0..<32 {
                let broker = client.isMultiple(of: 2) ? first : second
                group.addTask {
                    var seen: [Int] = []
                    for round in 0..<4 {
                        let created = try await broker.call("POST", "/v1/allocations", token: token, json: body)
                        seen.append(created.status)
                        guard created.status == 201, let id = created.json["id"]?.string else { continue }
                        let target = (client + round) % 4 + 1
                        seen.append(
                            try await broker.call(
                                "PATCH", "/v1/allocations/\(id)", token: token, json: ["replicas": .number(Double(target))]
                            ).status)
                        if (client + round).isMultiple(of: 3) {
                            seen.append(
                                try await broker.call("PATCH", "/v1/allocations/\(id)", token: token, json: ["replicas": 1]).status)
                        }
                        if !(client + round).isMultiple(of: 2) {
                            seen.append(try await broker.call("DELETE", "/v1/allocations/\(id)", token: token).status)
                        }
                    }
                    return seen
                }
            }
            return try await group.reduce(into: [Int]()) { $0 += $1 }
        }
        // Contention is answered with 409 (no capacity) or 503 (retry), never a server error.
        XCTAssertEqual(statuses.filter { $0 >= 500 && $0 != 503 }, [])
        let problems = try await LedgerCheck.run(first)
        XCTAssertEqual(problems, [])
        XCTAssertGreaterThan(statuses.filter { $0 == 201 }.count, 0, "no grant at all")
        var checked: [String] = []
        for region in ["a", "b"] {
            let inventory: Answers.RegionInventory =
                try await first.call("GET", "/v1/regions/\(region)/inventory", token: token).decode()
            for pool in inventory.pools {
                checked.append("\(region)/\(pool.id)")
                XCTAssertLessThanOrEqual(pool.allocated, pool.capacity, "\(region)/\(pool.id)")
            }
        }
        XCTAssertEqual(checked, ["a/cpu", "b/cpu"])
        await second.stop()
        await first.stop()
    }
}
