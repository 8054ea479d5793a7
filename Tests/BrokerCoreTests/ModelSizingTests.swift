import JSON
import XCTest
@testable import BrokerCore

final class ModelSizingTests: XCTestCase {
    func testParseParameters() {
        XCTAssertEqual(ModelSizing.parseParameters("7B"), 7e9)
        XCTAssertEqual(ModelSizing.parseParameters("7b"), 7e9)
        XCTAssertEqual(ModelSizing.parseParameters("13.5B"), 13.5e9)
        XCTAssertEqual(ModelSizing.parseParameters("500M"), 5e8)
        XCTAssertEqual(ModelSizing.parseParameters("1.2T"), 1.2e12)
        XCTAssertEqual(ModelSizing.parseParameters("70K"), 7e4)
        XCTAssertEqual(ModelSizing.parseParameters("7000000000"), 7e9)
        XCTAssertEqual(ModelSizing.parseParameters(" 8 B "), 8e9)
        XCTAssertEqual(ModelSizing.parseParameters(.number(7e9)), 7e9)
        XCTAssertEqual(ModelSizing.parseParameters(.string("8B")), 8e9)
        for bad in ["", "B", "7X", "-7B", "+7B", "7e9", "0x10", "inf", "nan", "0", "0B", "1.2.3B", ".", "7BB", "2000T"] {
            XCTAssertNil(ModelSizing.parseParameters(bad), bad)
        }
        for bad: JSONValue in [0, -1, .number(.infinity), .number(.nan), 2e15, true, .null, ["7B"]] {
            XCTAssertNil(ModelSizing.parseParameters(bad), "\(bad)")
        }
    }

    func test7BFP16() {
        let result = ModelSizing.size(ModelSpec(parameters: 7e9, precision: .fp16))
        XCTAssertEqual(result.weightsGiB, 13.04, accuracy: 0.005)
        XCTAssertEqual(result.kvCacheGiB, 0)
        XCTAssertEqual(result.requiredGiB, 14.48, accuracy: 0.01)
        XCTAssertEqual(ModelSizing.gpusNeeded(requiredGiB: result.requiredGiB, gpuMemoryGiB: 16), 1)
        XCTAssertEqual(ModelSizing.gpusNeeded(requiredGiB: result.requiredGiB, gpuMemoryGiB: 24), 1)
        XCTAssertEqual(ModelSizing.gpusNeeded(requiredGiB: result.requiredGiB, gpuMemoryGiB: 8), 2)
        XCTAssertTrue(ModelSizing.fits(requiredGiB: result.requiredGiB, gpuMemoryGiB: 24, gpus: 1))
        XCTAssertFalse(ModelSizing.fits(requiredGiB: result.requiredGiB, gpuMemoryGiB: 8, gpus: 1))
    }

    func test8BFP16() {
        let result = ModelSizing.size(ModelSpec(parameters: 8e9, precision: .bf16))
        XCTAssertEqual(result.weightsGiB, 14.90, accuracy: 0.005)
        XCTAssertEqual(result.requiredGiB, 16.56, accuracy: 0.01)
        XCTAssertEqual(ModelSizing.gpusNeeded(requiredGiB: result.requiredGiB, gpuMemoryGiB: 16), 2)
        XCTAssertEqual(ModelSizing.gpusNeeded(requiredGiB: result.requiredGiB, gpuMemoryGiB: 24), 1)
    }

    func test70BInt4() {
        let result = ModelSizing.size(ModelSpec(parameters: 70e9, precision: .int4))
        XCTAssertEqual(result.weightsGiB, 32.60, accuracy: 0.005)
        XCTAssertEqual(result.requiredGiB, 36.22, accuracy: 0.01)
        XCTAssertEqual(ModelSizing.gpusNeeded(requiredGiB: result.requiredGiB, gpuMemoryGiB: 24), 2)
        XCTAssertEqual(ModelSizing.gpusNeeded(requiredGiB: result.requiredGiB, gpuMemoryGiB: 48), 1)
    }

    func testPrecisions() {
        XCTAssertEqual(ModelSizing.size(ModelSpec(parameters: 1_073_741_824, precision: .fp32)).weightsGiB, 4)
        XCTAssertEqual(ModelSizing.size(ModelSpec(parameters: 1_073_741_824, precision: .fp8)).weightsGiB, 1)
        XCTAssertEqual(ModelSizing.size(ModelSpec(parameters: 1_073_741_824, precision: .int8)).weightsGiB, 1)
    }

    func testKVCacheComputed() {
        // Llama-2-7B-like: 32 layers, hidden 4096, context 4096, fp16: 2 × 32 × 4096 × 4096 × 2 B = 2 GiB per sequence.
        let model = ModelSpec(parameters: 7e9, precision: .fp16, contextLength: 4096, layers: 32, hiddenSize: 4096)
        let result = ModelSizing.size(model)
        XCTAssertEqual(result.kvCacheGiB, 2, accuracy: 1e-12)
        XCTAssertEqual(result.requiredGiB, (result.weightsGiB + 2) / 0.9, accuracy: 1e-12)
        var batched = model
        batched.batchSize = 4
        XCTAssertEqual(ModelSizing.size(batched).kvCacheGiB, 8, accuracy: 1e-12)
    }

    func testKVCacheNeedsAllThreeDimensions() {
        XCTAssertEqual(ModelSizing.size(ModelSpec(parameters: 7e9, precision: .fp16, contextLength: 4096, layers: 32)).kvCacheGiB, 0)
        XCTAssertEqual(ModelSizing.size(ModelSpec(parameters: 7e9, precision: .fp16, layers: 32, hiddenSize: 4096)).kvCacheGiB, 0)
    }

    func testGivenKVCacheAndFraction() {
        let result = ModelSizing.size(ModelSpec(parameters: 7e9, precision: .fp16, contextLength: 4096, layers: 32,
                                                hiddenSize: 4096, kvCacheGiB: 5, usableFraction: 1))
        XCTAssertEqual(result.kvCacheGiB, 5)
        XCTAssertEqual(result.requiredGiB, result.weightsGiB + 5, accuracy: 1e-12)
    }

    func testGPUsNeededEdges() {
        XCTAssertEqual(ModelSizing.gpusNeeded(requiredGiB: 16, gpuMemoryGiB: 16), 1)
        XCTAssertEqual(ModelSizing.gpusNeeded(requiredGiB: 16.01, gpuMemoryGiB: 16), 2)
        XCTAssertEqual(ModelSizing.gpusNeeded(requiredGiB: 0, gpuMemoryGiB: 16), 1)
        XCTAssertEqual(ModelSizing.gpusNeeded(requiredGiB: 10, gpuMemoryGiB: 0), Int.max)
    }

    func testSizingRequest() throws {
        XCTAssertEqual(try SizingRequest.parse(["parameters": "7B", "precision": "fp16", "contextLength": 8192, "layers": 32, "hiddenSize": 4096]),
                       ModelSpec(parameters: 7e9, precision: .fp16, contextLength: 8192, layers: 32, hiddenSize: 4096))
        XCTAssertEqual(failingFields { try SizingRequest.parse(["precision": "fp99", "usableFraction": 0, "model": "x"]) },
                       ["model", "parameters", "precision", "usableFraction"])
        assertError("", "object") { try SizingRequest.parse("7B") }
    }
}
