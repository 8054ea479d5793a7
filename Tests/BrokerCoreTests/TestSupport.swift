import JSON
import XCTest
@testable import BrokerCore

/// Parses JSON text, failing the test on syntax errors.
func json(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> JSONValue {
    do {
        return try JSONValue.parse(text)
    } catch {
        XCTFail("bad test JSON: \(error)", file: file, line: line)
        return .null
    }
}

/// The field errors `body` throws; fails the test when it succeeds.
func fieldErrors<T>(
    file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> T
) -> [FieldError] {
    do {
        let value = try body()
        XCTFail("expected a validation failure, got \(value)", file: file, line: line)
        return []
    } catch let error as ValidationFailure {
        XCTAssertFalse(error.errors.isEmpty, "failure without errors", file: file, line: line)
        return error.errors
    } catch {
        XCTFail("expected a ValidationFailure, got \(error)", file: file, line: line)
        return []
    }
}

/// The failing fields, sorted.
func failingFields<T>(
    file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> T
) -> [String] {
    fieldErrors(file: file, line: line, body).map(\.field).sorted()
}

/// Asserts exactly one error, on `field`, whose message contains `message`.
func assertError<T>(
    _ field: String, _ message: String? = nil, file: StaticString = #filePath, line: UInt = #line,
    _ body: () throws -> T
) {
    let errors = fieldErrors(file: file, line: line, body)
    XCTAssertEqual(errors.map(\.field), [field], "\(errors)", file: file, line: line)
    if let message, let first = errors.first {
        XCTAssertTrue(first.message.contains(message), "\(first.message) does not contain \(message)", file: file, line: line)
    }
}

/// Returns `object` with `key` set (or removed with nil).
func with(_ object: JSONValue, _ key: String, _ value: JSONValue?) -> JSONValue {
    var members = object.objectValue ?? [:]
    members[key] = value
    return .object(members)
}

/// Deterministic RNG for generated-input tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
