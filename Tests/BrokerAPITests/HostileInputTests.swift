import BrokerCore
import BrokerStore
import Foundation
import TestSupport
import XCTest

/// Bad input never reaches a 5xx and never changes state: thousands of generated
/// bodies against the live endpoints.
final class HostileInputTests: XCTestCase {
    func testGeneratedBodiesGetFourHundredsAndChangeNothing() async throws {
        let broker = try TestBroker()
        let token = try await broker.tenant().token
        try await broker.region("a")
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 1_000_000)
        // A fixed-seed linear congruential sequence: the same bodies every run.
        var state: UInt64 = 0x6770_6272
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 17
        }
        let valid = Array(#"{"computeClass":"general-purpose","cpu":1,"memoryGiB":2,"replicas":1}"#.utf8)
        let specials: [[UInt8]] = [
            Array(String(repeating: "[", count: 10_000).utf8),
            Array(#"{"computeClass":"gpu","gpuSeries":[null],"cpu":1,"memoryGiB":1,"replicas":1}"#.utf8),
            Array(#"{"computeClass":"general-purpose","cpu":1e400,"memoryGiB":2,"replicas":1}"#.utf8),
            Array(#"{"computeClass":"general-purpose","cpu":NaN,"memoryGiB":2,"replicas":1}"#.utf8),
            Array(#"{"computeClass":"general-purpose","cpu":1,"memoryGiB":2,"replicas":99999999999999999999}"#.utf8),
            Array(#"{"computeClass":"general-purpose","cpu":1,"memoryGiB":2,"replicas":1,"labels":{"a\u0000b":"c"}}"#.utf8),
            [0xff, 0xfe, 0x00, 0x01, 0x80],
        ]
        var statuses: [Int: Int] = [:]
        var answered: Set<ResourceID> = []  // allocations the 2xx answers created
        var placed = 0  // replicas those answers say they hold
        for index in 0..<1_200 {
            var body = index < specials.count ? specials[index] : valid
            if index >= specials.count {
                for _ in 0..<(1 + Int(next() % 4)) {
                    let position = Int(next() % UInt64(body.count))
                    switch next() % 3 {
                    case 0: body[position] = UInt8(truncatingIfNeeded: next())
                    case 1: body.remove(at: position)
                    default: body.insert(Array("{}[],:\"0-e.\\".utf8)[Int(next() % 12)], at: position)
                    }
                    if body.isEmpty { body = [0x7b] }
                }
            }
            let path = index.isMultiple(of: 3) ? "/v1/allocations/from-manifest" : "/v1/allocations"
            let response = try await broker.call(
                "POST", path, token: token, body: body, headers: ["Content-Type": "application/json"])
            statuses[response.status, default: 0] += 1
            if response.status == 201 || response.status == 202 {
                let allocation = path == "/v1/allocations"
                    ? try response.decode(AllocationView.self) : try response.decode(Answers.Manifest.self).allocation
                answered.insert(allocation.id)
                placed += allocation.placedReplicas
            }
            XCTAssertLessThan(response.status, 500, "\(String(decoding: body, as: UTF8.self)): \(response.text)")
            if response.status >= 400 {
                XCTAssertEqual(response.header("Content-Type"), "application/problem+json")
            }
        }
        print("hostile bodies: statuses \(statuses.sorted { $0.key < $1.key })")
        // Whatever was granted is exactly what the answers said, and refused requests
        // left nothing behind: no allocation and no instance that no answer accounts for.
        XCTAssertGreaterThan(answered.count, 0, "no mutated body was granted: the bound below would prove nothing")
        let (allocations, running) = try await count(broker)
        XCTAssertEqual(allocations, answered.count)
        XCTAssertEqual(running, placed)
        let inventory: Answers.RegionInventory = try await broker.call("GET", "/v1/regions/a/inventory", token: token).decode()
        XCTAssertEqual(inventory.pools.map(\.allocated), [running])
        let problems = try await LedgerCheck.run(broker)
        XCTAssertEqual(problems, [])
        await broker.stop()
    }

    func count(_ broker: TestBroker) async throws -> (allocations: Int, running: Int) {
        try await broker.pool.withConnection { c in
            let row = try c.query(
                """
                SELECT (SELECT count(*)::int FROM allocations) AS allocations,
                       (SELECT count(*)::int FROM instances WHERE state = 'running') AS running
                """)[0]
            return (try row.decode("allocations"), try row.decode("running"))
        }
    }
}
