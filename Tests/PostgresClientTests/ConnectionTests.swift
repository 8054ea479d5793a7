import Foundation
@testable import PostgresClient
import TestHarness
import XCTest

final class ConnectionTests: XCTestCase {
    struct Payload: Codable, Equatable {
        var name: String
        var count: Int
        var at: Date
        var tags: [String]
    }

    func testRoundTripOfEverySupportedType() throws {
        let connection = try TestDatabase.connect()
        try connection.executeScript("""
            DROP TABLE IF EXISTS pgc_types;
            CREATE TABLE pgc_types (
                id int PRIMARY KEY, s text, i bigint, i64 bigint, i32 int, d double precision, b boolean,
                u uuid, t timestamptz, a text[], j jsonb, n text
            )
            """)
        let uuid = UUID()
        let date = Date(timeIntervalSince1970: 1_795_418_643.123456)
        let array = ["plain", "with,comma", "with \"quote\"", "back\\slash", "", "NULL", "ünïcödé 🚀", "{x}", " sp "]
        let payload = Payload(name: "gpu \"a100\"", count: 8, at: date, tags: ["a", "b"])
        let insert = """
            INSERT INTO pgc_types (id, s, i, i64, i32, d, b, u, t, a, j, n)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            """
        let result = try connection.query(insert, [
            1, "héllo 'world' \\ \"", Int.max, Int64.min, Int32(-42), 3.141592653589793, true, uuid, date, array,
            PostgresJSON(rawJSON: #"{"name":"gpu \"a100\"","count":8,"at":"\#(PostgresTimestamp.format(date))","tags":["a","b"]}"#),
            String?.none,
        ])
        XCTAssertEqual(result.affectedRows, 1)
        // All NULL except the key, through Optional binds.
        try connection.query(insert, [
            2, String?.none, Int?.none, Int64?.none, Int32?.none, Double?.none, Bool?.none, UUID?.none, Date?.none,
            [String]?.none, PostgresJSON?.none, String?.none,
        ])
        try connection.query(insert, [3, "", 0, 0, Int32(0), -0.5, false, uuid, date, [String](), PostgresJSON(rawJSON: "[1, 2]"), "x"])

        let rows = try connection.query("SELECT * FROM pgc_types ORDER BY id")
        XCTAssertEqual(rows.count, 3)
        let row = rows[0]
        XCTAssertEqual(try row.decode("s", as: String.self), "héllo 'world' \\ \"")
        XCTAssertEqual(try row.decode("i", as: Int.self), Int.max)
        XCTAssertEqual(try row.decode("i64", as: Int64.self), Int64.min)
        XCTAssertEqual(try row.decode("i32", as: Int32.self), -42)
        XCTAssertEqual(try row.decode("d", as: Double.self), 3.141592653589793)
        XCTAssertEqual(try row.decode("b", as: Bool.self), true)
        XCTAssertEqual(try row.decode("u", as: UUID.self), uuid)
        XCTAssertEqual(try row.decode("t", as: Date.self).timeIntervalSince1970, date.timeIntervalSince1970, accuracy: 1e-6)
        XCTAssertEqual(try row.decode("a", as: [String].self), array)
        XCTAssertEqual(try row.decodeJSON("j", as: Payload.self).name, payload.name)
        XCTAssertEqual(try row.decodeJSON("j", as: Payload.self).at.timeIntervalSince1970, date.timeIntervalSince1970, accuracy: 1e-6)
        XCTAssertTrue(row.isNull("n"))
        XCTAssertNil(try row.decodeIfPresent("n", as: String.self))
        XCTAssertThrowsError(try row.decode("n", as: String.self))
        XCTAssertThrowsError(try row.decode("missing", as: String.self))

        let nulls = rows[1]
        for column in ["s", "i", "i64", "i32", "d", "b", "u", "t", "a", "j", "n"] {
            XCTAssertTrue(nulls.isNull(column), column)
        }
        XCTAssertNil(try nulls.decodeIfPresent("u", as: UUID.self))
        XCTAssertNil(try nulls.decodeIfPresent("a", as: [String].self))

        let third = rows[2]
        XCTAssertEqual(try third.decode("a", as: [String].self), [])
        XCTAssertEqual(try third.decode("s", as: String.self), "")
        XCTAssertEqual(try third.decodeJSON("j", as: [Int].self), [1, 2])
        XCTAssertEqual(try third.decode("b", as: Bool.self), false)

        // The server sees the array elements exactly, including a NULL made on the server.
        let check = try connection.query(
            "SELECT $1::text[] = $2::text[] AS same, array_length($1::text[], 1) AS n, ARRAY['a', NULL, 'b,c']::text[] AS with_null",
            [array, array]
        )
        XCTAssertEqual(try check[0].decode("same", as: Bool.self), true)
        XCTAssertEqual(try check[0].decode("n", as: Int.self), array.count)
        XCTAssertEqual(try PostgresArrayLiteral.parse(check[0].decode("with_null", as: String.self)), ["a", nil, "b,c"])
        XCTAssertThrowsError(try check[0].decode("with_null", as: [String].self))

        // timestamptz output in another session time zone decodes to the same instant, microseconds kept.
        try connection.executeScript("SET TIME ZONE 'Asia/Kolkata'")
        let zoned = try connection.query("SELECT t, t::text AS text FROM pgc_types WHERE id = 1")
        XCTAssertTrue(try zoned[0].decode("text", as: String.self).hasSuffix(".123456+05:30"))
        XCTAssertEqual(try zoned[0].decode("t", as: Date.self).timeIntervalSince1970, date.timeIntervalSince1970, accuracy: 1e-6)

        // The same SQL text is prepared once per connection.
        let before = connection.preparedStatementCount
        for value in 0..<5 { try connection.query("SELECT $1::int + 1 AS v", [value]) }
        XCTAssertEqual(connection.preparedStatementCount, before + 1)
        try connection.executeScript("DROP TABLE pgc_types")
    }

    func testUniqueViolationCarriesSQLStateAndConstraint() throws {
        let connection = try TestDatabase.connect()
        try connection.executeScript("""
            DROP TABLE IF EXISTS pgc_unique;
            CREATE TABLE pgc_unique (id int PRIMARY KEY, name text CONSTRAINT pgc_unique_name_key UNIQUE)
            """)
        try connection.query("INSERT INTO pgc_unique VALUES ($1, $2)", [1, "secret-name"])
        assertThrowsPostgresError({ try connection.query("INSERT INTO pgc_unique VALUES ($1, $2)", [2, "secret-name"]) }) { error in
            XCTAssertEqual(error.kind, .server)
            XCTAssertEqual(error.sqlState, .uniqueViolation)
            XCTAssertEqual(error.constraint, "pgc_unique_name_key")
            XCTAssertEqual(error.detail?.contains("secret-name"), true)
            XCTAssertFalse(error.description.contains("secret-name"))
            XCTAssertFalse(error.isConnectionProblem)
        }
        XCTAssertTrue(connection.isHealthy)
        assertThrowsPostgresError({ try connection.query("SELECT * FROM pgc_no_such_table") }) { error in
            XCTAssertEqual(error.sqlState, .undefinedTable)
        }
        // A failed statement inside a transaction leaves it INERROR: not healthy until rolled back.
        try connection.executeScript("BEGIN")
        XCTAssertThrowsError(try connection.query("INSERT INTO pgc_unique VALUES ($1, $2)", [1, "x"]))
        XCTAssertFalse(connection.isHealthy)
        try connection.executeScript("ROLLBACK")
        XCTAssertTrue(connection.isHealthy)
        try connection.executeScript("DROP TABLE pgc_unique")
    }

    func testParametersConfigurationOverUnixSocket() throws {
        _ = try TestDatabase.serverURL
        let environment = ProcessInfo.processInfo.environment
        let data = try XCTUnwrap(environment["GPUBROKER_TEST_PG_DATA"])
        let socketDirectory = URL(fileURLWithPath: data).deletingLastPathComponent().path
        var configuration = PostgresConfiguration(parameters: [
            "host": socketDirectory, "port": try XCTUnwrap(environment["PGPORT"]), "user": "postgres", "dbname": "postgres",
        ])
        configuration.applicationName = "pgc-socket-test"
        let connection = try PostgresConnection.connect(configuration)
        let row = try connection.query("SELECT current_setting('application_name') AS app, inet_server_addr() IS NULL AS socket")[0]
        XCTAssertEqual(try row.decode("app", as: String.self), "pgc-socket-test")
        XCTAssertEqual(try row.decode("socket", as: Bool.self), true)
    }

    func testConnectFailureIsAConnectionError() throws {
        _ = try TestDatabase.serverURL
        var configuration = PostgresConfiguration(url: "postgresql://postgres@127.0.0.1:1/postgres")
        configuration.connectTimeoutSeconds = 2
        assertThrowsPostgresError({ _ = try PostgresConnection.connect(configuration) }) { error in
            XCTAssertEqual(error.kind, .connection)
            XCTAssertTrue(error.isConnectionProblem)
        }
    }
}

/// Issue 31, F2: after a broker↔database partition healed, pooled connections waited
/// 9–25 s on TCP retransmission timers. Keepalives and tcp_user_timeout are on by default.
final class TCPDefaultsTests: XCTestCase {
    func testConnectionsUseKeepalivesAndAUserTimeoutUnlessTheURLSaysOtherwise() throws {
        let url = try XCTUnwrap(ProcessInfo.processInfo.environment["GPUBROKER_TEST_DATABASE_URL"])
        let connection = try PostgresConnection.connect(PostgresConfiguration(url: url))
        XCTAssertEqual(connection.socketOption(Int32(IPPROTO_TCP), TCP_USER_TIMEOUT), 10_000)
        XCTAssertEqual(connection.socketOption(SOL_SOCKET, SO_KEEPALIVE), 1)
        XCTAssertEqual(connection.socketOption(Int32(IPPROTO_TCP), TCP_KEEPIDLE), 10)
        let chosen = try PostgresConnection.connect(PostgresConfiguration(url: url + "?tcp_user_timeout=2500"))
        XCTAssertEqual(chosen.socketOption(Int32(IPPROTO_TCP), TCP_USER_TIMEOUT), 2500, "the URL's own value wins")
    }
}
