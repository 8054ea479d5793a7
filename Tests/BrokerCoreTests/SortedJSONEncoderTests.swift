import BrokerCore
import Foundation
import JSON
import XCTest

/// `SortedJSONEncoder` writes what JSONEncoder with sorted keys and unescaped slashes
/// wrote before it, byte for byte.
final class SortedJSONEncoderTests: XCTestCase {
    static let foundation: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(timestamp(date))
        }
        return encoder
    }()

    static func timestamp(_ date: Date) -> String { "t\(Int(date.timeIntervalSince1970))" }

    func assertSameBytes<T: Encodable>(_ value: T, file: StaticString = #filePath, line: UInt = #line) throws {
        let ours = try SortedJSONEncoder(date: Self.timestamp).encodeText(value)
        let theirs = String(decoding: try Self.foundation.encode(value), as: UTF8.self)
        XCTAssertEqual(ours, theirs, file: file, line: line)
    }

    func testModelsEncodeAsJSONEncoderDid() throws {
        let request = AllocationRequest(
            shape: ComputeShape(computeClass: .gpu, qos: .bestEffort, gpuSeries: ["T4", "A10"], gpuCount: 2, cpu: 0.25, memoryGiB: 15),
            replicas: 3, region: "cn-hangzhou/idc", placement: PlacementPolicy(
                strategy: .spread, units: [PlacementUnit(regions: ["a", "b"], max: 2), PlacementUnit(selector: RegionSelector(kind: .onPremises, labels: ["tier": "gold"]))]),
            allOrNothing: false, labels: ["app": "web \"quoted\"", "é": "tab\there\u{1}"])
        try assertSameBytes(request)
        // Every optional member present, through JSONWritable, top level and nested.
        let sized = AllocationRequest(
            shape: ComputeShape(computeClass: .gpu, gpuCount: 1, cpu: 8, memoryGiB: 30.5, instanceType: "ecs.gn7i",
                                requiredGPUMemoryGiB: 22.25, maxPricePerHour: 2.5),
            replicas: 1, model: ModelSpec(parameters: 7e9, precision: .bf16, contextLength: 4096, layers: 32, hiddenSize: 4096,
                                          batchSize: 2, kvCacheGiB: 1.5, usableFraction: 0.9),
            placement: PlacementPolicy(
                strategy: .cheapest, units: [PlacementUnit(regions: ["*"], max: 0, weight: 3), PlacementUnit(selector: RegionSelector())],
                maxPricePerHour: 0.75),
            leaseSeconds: 86400, queue: true, queueTimeoutSeconds: 60)
        try assertSameBytes(sized)
        try assertSameBytes(["requests": [sized, request]])
        try assertSameBytes([PlacementDecision(region: "a", replicas: 1, reason: "1e-07 of 3.5")])
        try assertSameBytes(["at": Date(timeIntervalSince1970: 1_700_000_000)])
        try assertSameBytes([0.1, 1, -2.5, 1e-7, 123456789, 1e21, Double(Int64.max)])
        try assertSameBytes(Optional<Int>.none)
        try assertSameBytes(["seq": Int64(42), "small": Int64(-7)])
        // Integers are written exactly, also past 2^53 where a Double would round them.
        try assertSameBytes(["big": Int64(9_007_199_254_740_993), "max": Int64.max, "min": Int64.min])
        try assertSameBytes([UInt8(1), UInt8(255)])
    }

    /// Hand-written Encodable types may nest containers; the encoder places them.
    func testNestedContainersAndSuperEncoders() throws {
        struct Nested: Encodable {
            enum Keys: String, CodingKey { case a, b, c, d }
            func encode(to encoder: any Encoder) throws {
                var top = encoder.container(keyedBy: Keys.self)
                try top.encode(1, forKey: .a)
                var inner = top.nestedContainer(keyedBy: Keys.self, forKey: .b)
                try inner.encode("x", forKey: .c)
                var list = top.nestedUnkeyedContainer(forKey: .c)
                try list.encode(true)
                var deeper = list.nestedContainer(keyedBy: Keys.self)
                try deeper.encode(2.5, forKey: .d)
                try list.encodeNil()
                try "sup".encode(to: top.superEncoder(forKey: .d))
            }
        }
        try assertSameBytes(Nested())
        try assertSameBytes([Nested(), Nested()])
    }
}
