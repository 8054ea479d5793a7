import Foundation
import JSON
import XCTest
@testable import BrokerCore

/// Thousands of randomly mutated bodies: parsing never traps, and either succeeds or reports
/// at least one field error with a message.
final class AllocationRequestFuzzTests: XCTestCase {
    static let seeds: [String] = [
        #"{"computeClass":"gpu","qos":"default","gpuSeries":["A10","L20"],"gpuCount":1,"cpu":4,"memoryGiB":16,"replicas":4,"instanceType":"ecs.gn7i-c8g1.2xlarge","model":{"parameters":"8B","precision":"fp16"},"placement":{"strategy":"prefer","units":[{"regions":["idc-shanghai"],"max":3},{"regions":["*"]}]},"allOrNothing":true,"leaseSeconds":600,"queue":false,"labels":{"app":"qwen3-8b"}}"#,
        #"{"computeClass":"general-purpose","cpu":2,"memoryGiB":4,"region":"cn-beijing","queue":true,"queueTimeoutSeconds":60}"#,
        #"{"computeClass":"gpu","model":{"parameters":7000000000,"precision":"int4","contextLength":4096,"layers":32,"hiddenSize":4096,"batchSize":2,"usableFraction":0.8},"cpu":8,"memoryGiB":32,"placement":{"strategy":"spread","units":[{"selector":{"kind":"on-premises","labels":{"zone":"a"}},"max":2}]}}"#,
    ]

    static let interestingValues: [JSONValue] = [
        .null, true, false, 0, -1, 1, 1.5, 1e300, -1e300, 4.9e-324, 9_007_199_254_740_993, "", "x", "7B", "*", "gpu",
        "default", "spread", [], [1], [""], ["*"], ["a", "a"], [:], ["regions": ["*"]], ["max": 0], ["labels": ["a": 1]],
        .string(String(repeating: "z", count: 300)),
    ]

    func testMutatedValuesNeverCrash() throws {
        var rng = SplitMix64(seed: 0x5EED)
        var parsed = 0
        var rejected = 0
        for round in 0..<3000 {
            let seed = try JSONValue.parse(Self.seeds[round % Self.seeds.count])
            var value = seed
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                value = mutate(value, depth: 0, rng: &rng)
            }
            // Through bytes as well, as a request would arrive.
            let reparsed = try JSONValue.parse(value.encoded())
            XCTAssertEqual(reparsed, value)
            do {
                let request = try AllocationRequest.parse(reparsed)
                XCTAssertGreaterThanOrEqual(request.replicas, 1)
                XCTAssertTrue(request.shape.cpu > 0 && request.shape.memoryGiB > 0)
                XCTAssertEqual(try JSONDecoder().decode(AllocationRequest.self, from: Data(request.canonicalJSON())), request)
                XCTAssertEqual(try AllocationRequest.parse(request.body), request, "the body form reads back as the request")
                parsed += 1
            } catch {
                XCTAssertFalse(error.errors.isEmpty)
                XCTAssertTrue(error.errors.allSatisfy { !$0.message.isEmpty })
                rejected += 1
            }
        }
        XCTAssertGreaterThan(parsed, 50, "mutations too destructive to exercise success paths")
        XCTAssertGreaterThan(rejected, 500)
    }

    func testMutatedBytesNeverCrash() {
        var rng = SplitMix64(seed: 42)
        var syntaxErrors = 0
        for round in 0..<3000 {
            var bytes = Array(Self.seeds[round % Self.seeds.count].utf8)
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                guard !bytes.isEmpty else { break }
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: bytes[i] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes.remove(at: i)
                case 2: bytes.insert(Array(#"{}[]",:0-e."#.utf8).randomElement(using: &rng)!, at: i)
                default: bytes.insert(contentsOf: bytes[i..<min(bytes.count, i + 8)], at: i)
                }
            }
            do {
                let value = try JSONValue.parse(bytes)
                _ = try? AllocationRequest.parse(value)
            } catch {
                syntaxErrors += 1
            }
        }
        XCTAssertGreaterThan(syntaxErrors, 1000)
    }

    private func mutate(_ value: JSONValue, depth: Int, rng: inout SplitMix64) -> JSONValue {
        switch value {
        case .object(var members) where !members.isEmpty && depth < 4 && Int.random(in: 0..<3, using: &rng) > 0:
            let key = members.keys.sorted().randomElement(using: &rng)!
            switch Int.random(in: 0..<5, using: &rng) {
            case 0: members[key] = nil
            case 1: members[key + "x"] = members[key]
            case 2: members[key] = Self.interestingValues.randomElement(using: &rng)!
            default: members[key] = mutate(members[key]!, depth: depth + 1, rng: &rng)
            }
            return .object(members)
        case .array(var items) where !items.isEmpty && depth < 4 && Int.random(in: 0..<3, using: &rng) > 0:
            let i = Int.random(in: 0..<items.count, using: &rng)
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: items.remove(at: i)
            case 1: items.append(items[i])
            default: items[i] = mutate(items[i], depth: depth + 1, rng: &rng)
            }
            return .array(items)
        default:
            return Self.interestingValues.randomElement(using: &rng)!
        }
    }
}
