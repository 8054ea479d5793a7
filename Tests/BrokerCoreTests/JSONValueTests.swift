import XCTest
@testable import JSON

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

    func testDuplicateKeysAreRefusedByName() {
        XCTAssertThrowsError(try JSONValue.parse(#"{"a":{"b":1,"c":2,"b":3}}"#)) { error in
            XCTAssertEqual((error as? JSONSyntaxError)?.duplicateKey, "b")
        }
        XCTAssertNoThrow(try JSONValue.parse(#"{"a":{"b":1},"b":{"a":2}}"#), "the same key in two objects is fine")
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

    /// The parser agrees with Foundation's JSONDecoder, which it replaced, on valid
    /// documents and on single-byte corruptions of them: same value, or both refuse.
    /// Two differences are on purpose: a trailing comma is refused (it was before, by a
    /// check in front of Foundation), and `0e1` is accepted (RFC 8259 allows it).
    func testParserAgreesWithFoundationOnRandomDocumentsAndCorruptions() throws {
        var rng = SplitMix64(seed: 20261123)
        let alphabet = Array(#"{}[]:,"\ 0123456789.-+eEtrufalsn\u00e9abc/"#.utf8) + [0x0A, 0x09, 0xC3, 0xA9, 0x01]
        func randomValue(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0..<(depth > 3 ? 4 : 6), using: &rng) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &rng))
            case 2: return .number([0, -1, 2.5, 1e-7, 123456789, 0.1, -3e20][Int.random(in: 0..<7, using: &rng)])
            case 3: return .string(["", "a", "é\"q\"", "tab\there", "\u{1F600}", "/x\\"][Int.random(in: 0..<6, using: &rng)])
            case 4: return .array((0..<Int.random(in: 0..<4, using: &rng)).map { _ in randomValue(depth + 1) })
            default:
                return .object(Dictionary(
                    (0..<Int.random(in: 0..<4, using: &rng)).map { ("k\($0)", randomValue(depth + 1)) },
                    uniquingKeysWith: { a, _ in a }))
            }
        }
        var checked = 0
        for _ in 0..<600 {
            let document = randomValue(0).encoded()
            var inputs = [document]
            for _ in 0..<8 {
                var mutated = document
                let position = Int.random(in: 0...mutated.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0 where position < mutated.count: mutated.remove(at: position)
                case 1 where position < mutated.count: mutated[position] = alphabet.randomElement(using: &rng)!
                default: mutated.insert(alphabet.randomElement(using: &rng)!, at: position)
                }
                inputs.append(mutated)
            }
            for input in inputs {
                let text = String(decoding: input, as: UTF8.self)
                let foundation = try? JSONDecoder().decode(JSONValue.self, from: Data(input))
                do {
                    let ours = try JSONValue.parse(input)
                    if foundation == nil, text.contains("0e") || text.contains("0E") { continue }
                    XCTAssertEqual(ours, foundation, text)
                } catch {
                    // Foundation keeps one of a repeated key's values; ours refuses it.
                    if "\(error)".contains("trailing comma") || "\(error)".contains("duplicate key") { continue }
                    XCTAssertNil(foundation, "refused \(text): \(error)")
                }
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 5000)
    }
}
