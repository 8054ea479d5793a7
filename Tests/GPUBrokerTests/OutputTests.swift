import BrokerCore
import JSON
import XCTest
@testable import gpubroker

/// The CLI's renderers, without a broker.
final class OutputTests: XCTestCase {
    func testIndentedJSONIsTheSameDocument() throws {
        let tricky: JSONValue = .object([
            "text": .string("say \"a, b: {c}\" [x] \\ z\n"), "empty": .object([:]), "none": .array([]), "n": .number(1.5),
            "list": .array([.number(1), .null, .bool(true), .object(["k": .string("}")])]),
        ])
        let text = Printer.indentedJSON(tricky)
        XCTAssertEqual(try JSONValue.parse(text), tricky)
        XCTAssertEqual(Printer.indentedJSON(.object(["a": .array([.number(1)]), "b": .object([:])])), """
            {
              "a": [
                1
              ],
              "b": {}
            }
            """)
    }

    func testColourDoesNotMoveColumns() {
        var table = Table("NAME", "STATE")
        table.add("a-long-name", .state("active"))
        table.add("b", .state("pending"))
        let plain = table.render(colour: false)
        XCTAssertEqual(plain, "NAME          STATE\na-long-name   active\nb             pending\n")
        let coloured = table.render(colour: true)
        XCTAssertEqual(coloured.replacingOccurrences(of: "\u{1B}\\[[0-9;]*m", with: "", options: .regularExpression), plain)
        XCTAssertTrue(coloured.contains("\u{1B}[32mactive\u{1B}[0m") && coloured.contains("\u{1B}[33mpending\u{1B}[0m"), coloured)
    }

    func testDurations() {
        XCTAssertEqual(duration(59), "59s")
        XCTAssertEqual(duration(299), "4m59s")
        XCTAssertEqual(duration(-7260), "in 2h1m")
        XCTAssertEqual(duration(3 * 86400 + 5), "3d")
    }
}
