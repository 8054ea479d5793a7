import Foundation
import XCTest
@testable import BrokerCore

final class TimeOrderedUUIDTests: XCTestCase {
    func testVersionVariantAndTimestamp() {
        let at = Date(timeIntervalSince1970: 1_790_000_000.123)
        let id = UUID.timeOrdered(at: at)
        let text = id.uuidString.lowercased()
        // 1_790_000_000_123 ms = 0x01a0c4506c7b: the first 48 bits, then version 7.
        XCTAssertTrue(text.hasPrefix("01a0c450-6c7b-7"), text)
        XCTAssertTrue("89ab".contains(text[text.index(text.startIndex, offsetBy: 19)]), text)
        XCTAssertNotNil(ResourceID(id).description.range(of: "^[0-9a-f-]{36}$", options: .regularExpression))
    }

    func testLaterMillisecondsSortLater() {
        let start = Date(timeIntervalSince1970: 1_790_000_000)
        let ids = (0..<1000).map { UUID.timeOrdered(at: start.addingTimeInterval((Double($0) + 0.5) / 1000)) }
        let texts = ids.map { $0.uuidString.lowercased() }
        XCTAssertEqual(texts, texts.sorted())
        XCTAssertEqual(Set(ids).count, ids.count)
    }
}
