import XCTest
@testable import BrokerCore

final class QuantityTests: XCTestCase {
    func testCPU() throws {
        XCTAssertEqual(try Quantity.cpu("500m"), 0.5)
        XCTAssertEqual(try Quantity.cpu("1"), 1)
        XCTAssertEqual(try Quantity.cpu("2.5"), 2.5)
        XCTAssertEqual(try Quantity.cpu("250m"), 0.25)
        XCTAssertEqual(try Quantity.cpu(" 4 "), 4)
        XCTAssertEqual(try Quantity.cpu(.number(2)), 2)
        XCTAssertEqual(try Quantity.cpu(.string("100m")), 0.1, accuracy: 1e-12)
    }

    func testMemory() throws {
        XCTAssertEqual(try Quantity.memoryGiB("512Mi"), 0.5)
        XCTAssertEqual(try Quantity.memoryGiB("1Gi"), 1)
        XCTAssertEqual(try Quantity.memoryGiB("16Gi"), 16)
        XCTAssertEqual(try Quantity.memoryGiB("1Ti"), 1024)
        XCTAssertEqual(try Quantity.memoryGiB("1Ki"), 1.0 / 1_048_576)
        XCTAssertEqual(try Quantity.memoryGiB("1G"), 1e9 / 1_073_741_824)
        XCTAssertEqual(try Quantity.memoryGiB("1000M"), 1e9 / 1_073_741_824)
        XCTAssertEqual(try Quantity.memoryGiB("128974848"), 128_974_848 / 1_073_741_824)
        XCTAssertEqual(try Quantity.memoryGiB("129e6"), 129e6 / 1_073_741_824)
        XCTAssertEqual(try Quantity.memoryGiB("1e3"), 1000 / 1_073_741_824)
        XCTAssertEqual(try Quantity.memoryGiB("1E3"), 1000 / 1_073_741_824)
        XCTAssertEqual(try Quantity.memoryGiB("1E"), 1e18 / 1_073_741_824)
        XCTAssertEqual(try Quantity.memoryGiB("1.5Gi"), 1.5)
        XCTAssertEqual(try Quantity.memoryGiB("123k"), 123_000 / 1_073_741_824)
        XCTAssertEqual(try Quantity.memoryGiB(.number(1_073_741_824)), 1)
        XCTAssertEqual(try Quantity.parse("+1Ki"), 1024)
        XCTAssertEqual(try Quantity.parse("1e-3"), 0.001, accuracy: 1e-15)
        XCTAssertEqual(try Quantity.parse(".5"), 0.5)
    }

    func testGarbage() {
        for bad in ["", " ", "abc", "1Gb", "1gi", "1 Gi", "Gi", "-1", "-500m", "1..2", "1e", "1e+", "1ee3", "1Kii",
                    "0x10", "1,5", "1e99999", "inf", "nan", "1K", "1mi", "1.2.3", "."] {
            XCTAssertThrowsError(try Quantity.parse(bad), "accepted \"\(bad)\"")
        }
        XCTAssertThrowsError(try Quantity.cpu(.bool(true)))
        XCTAssertThrowsError(try Quantity.cpu(.number(-1)))
        XCTAssertThrowsError(try Quantity.memoryGiB(.null))
    }
}
