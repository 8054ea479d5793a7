import Foundation
import PostgresClient
import TestHarness
import XCTest

func assertThrowsPostgresError(
    _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line, _ check: (PostgresError) -> Void
) {
    do {
        try body()
        XCTFail("expected a PostgresError", file: file, line: line)
    } catch let error as PostgresError {
        check(error)
    } catch {
        XCTFail("expected a PostgresError, got \(error)", file: file, line: line)
    }
}

/// `pg_ctl` on the test cluster; fails the test unless it succeeds.
func assertPgCtl(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws {
    let result = try TestCluster.pgCtl(arguments)
    XCTAssertEqual(result.status, 0, "pg_ctl \(arguments.joined(separator: " ")): \(result.output)", file: file, line: line)
}
