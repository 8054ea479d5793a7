import Foundation
@testable import PostgresClient
import XCTest

/// Pure tests of the text codecs: no database.
final class CodingTests: XCTestCase {
    func testArrayLiteralFormatAndParse() throws {
        let elements: [String?] = ["plain", "with,comma", "with \"quote\"", "back\\slash", "", "NULL", nil, "ünïcödé 🚀", "{braces}", " spaced "]
        let literal = PostgresArrayLiteral.format(elements)
        XCTAssertEqual(try PostgresArrayLiteral.parse(literal), elements)
        XCTAssertEqual(try PostgresArrayLiteral.parse("{}"), [])
        XCTAssertEqual(try PostgresArrayLiteral.parse("{a,NULL,\"NULL\",\"\"}"), ["a", nil, "NULL", ""])
        XCTAssertEqual(try PostgresArrayLiteral.parse("[0:1]={x,y}"), ["x", "y"])
        XCTAssertThrowsError(try PostgresArrayLiteral.parse("{{a},{b}}"))
        XCTAssertThrowsError(try PostgresArrayLiteral.parse("{a,b"))
        XCTAssertThrowsError(try [String](postgresText: "{a,NULL}"))
        XCTAssertEqual([String]().postgresText, "{}")
    }

    func testTimestampParsing() throws {
        let utc = try Date(postgresText: "2026-11-23 07:24:03.123456+00")
        XCTAssertEqual(utc.timeIntervalSince1970, 1_795_418_643.123456, accuracy: 1e-6)
        XCTAssertEqual(try Date(postgresText: "2026-11-23 12:54:03.123456+05:30"), utc)
        XCTAssertEqual(try Date(postgresText: "2026-11-22 23:24:03.123456-08"), utc)
        XCTAssertEqual(try Date(postgresText: "2026-11-23T07:24:03.123456Z"), utc)
        XCTAssertEqual(try Date(postgresText: "2026-11-23 07:24:03+00").timeIntervalSince1970, 1_795_418_643)
        XCTAssertEqual(try Date(postgresText: "1969-12-31 23:59:59.5+00").timeIntervalSince1970, -0.5)
        XCTAssertEqual(Date(timeIntervalSince1970: 1_795_418_643.123456).postgresText, "2026-11-23T07:24:03.123456Z")
        XCTAssertEqual(Date(timeIntervalSince1970: -0.5).postgresText, "1969-12-31T23:59:59.500000Z")
        XCTAssertThrowsError(try Date(postgresText: "yesterday"))
        XCTAssertThrowsError(try Date(postgresText: "2026-13-01 00:00:00+00"))
    }

    func testScalarsAndErrors() throws {
        XCTAssertEqual(Double.infinity.postgresText, "Infinity")
        XCTAssertTrue(try Double(postgresText: "NaN").isNaN)
        XCTAssertEqual(try Bool(postgresText: "t"), true)
        XCTAssertThrowsError(try Int(postgresText: "1.5"))
        XCTAssertNil(Optional<String>.none.postgresText)

        let error = PostgresError(kind: .server, message: "duplicate key value violates unique constraint \"x\"",
                                  sqlState: .uniqueViolation, detail: "Key (name)=(secret) already exists.", constraint: "x")
        XCTAssertFalse(error.description.contains("secret"))
        XCTAssertTrue(error.debugDescription.contains("secret"))
        XCTAssertFalse(error.isConnectionProblem)
        XCTAssertTrue(PostgresError(kind: .server, message: "", sqlState: .readOnlySQLTransaction).isConnectionProblem)
        XCTAssertTrue(PostgresError(kind: .server, message: "", sqlState: SQLState(rawValue: "08006")).isConnectionProblem)
        XCTAssertTrue(PostgresError(kind: .commitOutcomeUnknown, message: "").isConnectionProblem)
    }
}
