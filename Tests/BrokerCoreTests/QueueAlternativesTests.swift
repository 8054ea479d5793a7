import JSON
import XCTest
@testable import BrokerCore

/// What a request that would queue is offered instead, as plain values.
final class QueueAlternativesTests: XCTestCase {
    /// a: its T4 pool full, a dear T4 pool and an A10 pool; b: T4 within the cap; c: cordoned.
    let inventory = [
        inv(mkRegion("a", primary: true), [
            gpuPool("t4", "a", capacity: 2, price: 1, allocated: 2),
            gpuPool("t4big", "a", capacity: 4, price: 5),
            gpuPool("a10", "a", series: "A10", memory: 24, capacity: 4, price: 2),
        ]),
        inv(mkRegion("b"), [gpuPool("t4", "b", capacity: 4, price: 3)]),
        inv(mkRegion("c", state: .cordoned), [gpuPool("t4", "c", capacity: 4, price: 0.5)]),
    ]

    func request(_ change: (inout AllocationRequest) -> Void = { _ in }) -> AllocationRequest {
        var shape = t4Shape
        shape.maxPricePerHour = 4
        var request = AllocationRequest(shape: shape, replicas: 2, region: "a", queue: true)
        change(&request)
        return request
    }

    func testEachKindIsOfferedCheapestFirstAndEachWouldBeGranted() {
        let input = GrantInput(request: request(), inventory: inventory)
        XCTAssertEqual(GrantPlanner.plan(input).outcome, .refuse, "it does not fit as asked")
        let alternatives = QueueAlternatives.find(input)
        XCTAssertEqual(alternatives.map(\.change), [.gpuSeries, .region, .maxPricePerHour])
        XCTAssertEqual(alternatives.map(\.pricePerHour), [4, 6, 10])
        XCTAssertEqual(alternatives.map(\.placedReplicas), [2, 2, 2])
        XCTAssertEqual(alternatives[2].maxPricePerHour, 5)
        XCTAssertFalse(alternatives.contains { $0.region == "c" }, "a cordoned region is no alternative")
        for alternative in alternatives {
            let sent = try? AllocationRequest.parse(alternative.request)
            XCTAssertNotNil(sent, "\(alternative.change): the body is a valid request")
            if let sent {
                XCTAssertEqual(GrantPlanner.plan(GrantInput(request: sent, inventory: inventory)).outcome, .grant)
            }
        }
    }

    func testNothingIsOfferedWhenNothingFitsAndAtMostFive() {
        let huge = GrantInput(request: request { $0.replicas = 50 }, inventory: inventory)
        XCTAssertEqual(QueueAlternatives.find(huge), [])
        let regions = (0..<8).map { inv(mkRegion("r\($0)"), [gpuPool("t4", "r\($0)", capacity: 4, price: Double($0) + 1)]) }
        let many = QueueAlternatives.find(GrantInput(request: request { $0.region = "a" }, inventory: inventory + regions))
        XCTAssertEqual(many.count, QueueAlternatives.limit)
        XCTAssertEqual(many.map(\.pricePerHour), many.map(\.pricePerHour).sorted())
    }

    func testAModelSizedRequestIsNotOfferedOtherSeries() {
        let sized = request {
            $0.model = ModelSpec(parameters: 7e9, precision: .fp16)
            $0.shape.gpuSeries = []
            $0.shape.requiredGPUMemoryGiB = 20
        }
        XCTAssertFalse(QueueAlternatives.find(GrantInput(request: sized, inventory: inventory)).contains { $0.change == .gpuSeries })
    }
}
