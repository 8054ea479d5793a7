import XCTest
@testable import BrokerCore

final class JSONValueTests: XCTestCase {
    func testParsesEveryKind() throws {
        let value = try JSONValue.parse(#"{"a": null, "b": true, "c": 1.5, "d": "x", "e": [1, "y"], "f": {"g": false}}"#)
        XCTAssertEqual(value, .object([
            "a": .null, "b": .bool(true), "c": .number(1.5), "d": .string("x"),
            "e": .array([.number(1), .string("y")]), "f": .object(["g": .bool(false)]),
        ]))
    }

    func testBooleansAndNumbersStayDistinct() throws {
        XCTAssertEqual(try JSONValue.parse("true"), .bool(true))
        XCTAssertEqual(try JSONValue.parse("1"), .number(1))
        XCTAssertEqual(try JSONValue.parse("0"), .number(0))
        XCTAssertEqual(try JSONValue.parse("false"), .bool(false))
    }

    func testTopLevelScalars() throws {
        XCTAssertEqual(try JSONValue.parse("null"), .null)
        XCTAssertEqual(try JSONValue.parse(#""hi""#), .string("hi"))
        XCTAssertEqual(try JSONValue.parse("-2.5e3"), .number(-2500))
    }

    func testKeyOrderIsIrrelevant() throws {
        XCTAssertEqual(try JSONValue.parse(#"{"a":1,"b":2}"#), try JSONValue.parse(#"{"b":2,"a":1}"#))
        XCTAssertEqual(try JSONValue.parse(#"{"b":2,"a":1}"#).encoded(), Array(#"{"a":1,"b":2}"#.utf8))
    }

    func testEncodedRoundTrips() throws {
        let text = #"{"arr":[1,2.5,-3,1e+300,"q\"\\\n\u0001é"],"n":null,"t":true,"o":{"z":{}}}"#
        let value = try JSONValue.parse(text)
        XCTAssertEqual(try JSONValue.parse(value.encoded()), value)
        XCTAssertEqual(JSONValue.number(4).jsonText, "4")
        XCTAssertEqual(JSONValue.number(0.1).jsonText, "0.1")
        XCTAssertEqual(JSONValue.number(.nan).jsonText, "null")
        XCTAssertEqual(JSONValue.string("a\u{1}").jsonText, #""a\u0001""#)
    }

    func testCodableRoundTrip() throws {
        let value: JSONValue = ["a": [1, "b", nil, true], "c": 2.5]
        let data = try JSONEncoder().encode(value)
        XCTAssertEqual(try JSONDecoder().decode(JSONValue.self, from: data), value)
    }

    func testMalformedInputThrows() {
        let inputs = [
            "", " ", "{", "}", "[", "]", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "[1 2]", "tru", "nul",
            "'a'", "{a:1}", "01x", "1.", ".5", "+1", "NaN", "Infinity", "-Infinity", "\"unterminated",
            "{\"a\":1}}", "[]]", "1e999", "-1e999", "\"\\x\"", "{\"a\":1 \"b\":2}", "/* c */ 1", "[1]x",
        ]
        for input in inputs {
            XCTAssertThrowsError(try JSONValue.parse(input), "accepted \(input)")
        }
    }

    func testGarbageBytesThrow() {
        var rng = SplitMix64(seed: 7)
        for length in [1, 2, 7, 64, 1000] {
            for _ in 0..<50 {
                let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                _ = try? JSONValue.parse(bytes)  // must not trap
            }
        }
        XCTAssertThrowsError(try JSONValue.parse([0xFF, 0xFE, 0x00]))
        XCTAssertThrowsError(try JSONValue.parse([0x22, 0xC3, 0x28, 0x22]))  // invalid UTF-8 in a string
        XCTAssertThrowsError(try JSONValue.parse([0x00]))
    }

    func testDeepNestingThrows() {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let deep = String(repeating: open, count: 10_000) + "1" + String(repeating: close, count: 10_000)
            XCTAssertThrowsError(try JSONValue.parse(deep)) { error in
                XCTAssertTrue("\(error)".contains("nested"), "\(error)")
            }
            let unclosed = String(repeating: open, count: 100_000)
            XCTAssertThrowsError(try JSONValue.parse(unclosed))
        }
    }

    func testNestingUpToTheLimitParses() throws {
        let depth = JSONValue.maxDepth
        let ok = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        XCTAssertNoThrow(try JSONValue.parse(ok))
        let tooDeep = String(repeating: "[", count: depth + 1) + String(repeating: "]", count: depth + 1)
        XCTAssertThrowsError(try JSONValue.parse(tooDeep))
    }

    func testBracketsInsideStringsDoNotCount() throws {
        let text = "[\"" + String(repeating: "[{", count: 500) + "\\\"]\"]"
        XCTAssertEqual(try JSONValue.parse(text).arrayValue?.count, 1)
    }
}
