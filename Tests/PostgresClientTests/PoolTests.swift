import Foundation
import PostgresClient
import Synchronization
import TestHarness
import XCTest

final class PoolTests: XCTestCase {
    struct Boom: Error {}

    func testRollbackOnThrownSwiftError() async throws {
        let pool = PostgresPool(configuration: try TestDatabase.configuration, size: 1)
        try await pool.withConnection { connection in
            try connection.executeScript("DROP TABLE IF EXISTS pgc_rollback; CREATE TABLE pgc_rollback (id int PRIMARY KEY)")
        }
        do {
            try await pool.withTransaction { connection in
                try connection.query("INSERT INTO pgc_rollback VALUES ($1)", [1])
                throw Boom()
            }
            XCTFail("expected Boom")
        } catch is Boom {}
        // A statement error inside the transaction: rolled back, and the connection is reusable.
        do {
            try await pool.withTransaction { connection in
                try connection.query("INSERT INTO pgc_rollback VALUES ($1)", [2])
                try connection.query("INSERT INTO pgc_rollback VALUES ($1)", [2])
            }
            XCTFail("expected a unique violation")
        } catch let error as PostgresError {
            XCTAssertEqual(error.sqlState, .uniqueViolation)
        }
        // A body that swallows a statement error must not report success.
        do {
            try await pool.withTransaction { connection in
                try connection.query("INSERT INTO pgc_rollback VALUES ($1)", [3])
                _ = try? connection.query("INSERT INTO pgc_rollback VALUES ($1)", [3])
            }
            XCTFail("expected an error")
        } catch let error as PostgresError {
            XCTAssertEqual(error.sqlState, .inFailedSQLTransaction)
        }
        let count = try await pool.withConnection { connection in
            try connection.query("SELECT count(*) AS n FROM pgc_rollback")[0].decode("n", as: Int.self)
        }
        XCTAssertEqual(count, 0)
        // A transaction left open by withConnection is rolled back before reuse.
        try await pool.withConnection { connection in
            try connection.executeScript("BEGIN")
            try connection.query("INSERT INTO pgc_rollback VALUES ($1)", [4])
        }
        let healthy = try await pool.withConnection { connection in
            (connection.isHealthy, try connection.query("SELECT count(*) AS n FROM pgc_rollback")[0].decode("n", as: Int.self))
        }
        XCTAssertEqual(healthy.0, true)
        XCTAssertEqual(healthy.1, 0)
        try await pool.withConnection { try $0.executeScript("DROP TABLE pgc_rollback") }
        await pool.close()
    }

    func testRetriesARealSerializationFailure() async throws {
        let pool = PostgresPool(configuration: try TestDatabase.configuration, size: 2)
        try await pool.withConnection { connection in
            try connection.executeScript("DROP TABLE IF EXISTS pgc_retry; CREATE TABLE pgc_retry (id int PRIMARY KEY)")
        }
        let attempts = Counter()
        let value = try await pool.withTransaction(isolation: .serializable) { connection in
            let attempt = attempts.increment()
            try connection.query("INSERT INTO pgc_retry VALUES ($1)", [attempt])
            if attempt == 1 {
                try connection.executeScript("DO $$ BEGIN RAISE EXCEPTION 'forced' USING ERRCODE = 'serialization_failure'; END $$")
            }
            return attempt
        }
        XCTAssertEqual(value, 2)
        XCTAssertEqual(attempts.count, 2)
        // Gives up after maxAttempts and surfaces the 40001.
        let stubborn = Counter()
        do {
            try await pool.withTransaction(maxAttempts: 3) { connection in
                stubborn.increment()
                try connection.executeScript("DO $$ BEGIN RAISE EXCEPTION 'deadlock' USING ERRCODE = 'deadlock_detected'; END $$")
            }
            XCTFail("expected 40P01")
        } catch let error as PostgresError {
            XCTAssertEqual(error.sqlState, .deadlockDetected)
        }
        XCTAssertEqual(stubborn.count, 3)

        // Write skew between two serializable transactions: one must be rerun.
        try await pool.withConnection { try $0.executeScript("TRUNCATE pgc_retry") }
        let readsDone = Counter()
        let totalAttempts = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for id in [10, 20] {
                group.addTask {
                    let mine = Counter()
                    try await pool.withTransaction(isolation: .serializable) { connection in
                        totalAttempts.increment()
                        let count = try connection.query("SELECT count(*) AS n FROM pgc_retry")[0].decode("n", as: Int.self)
                        if mine.increment() == 1 {
                            readsDone.increment()
                            let deadline = Date().addingTimeInterval(5)
                            while readsDone.count < 2, Date() < deadline { usleep(1000) }
                        }
                        try connection.query("INSERT INTO pgc_retry VALUES ($1)", [id + count])
                    }
                }
            }
            try await group.waitForAll()
        }
        XCTAssertEqual(totalAttempts.count, 3)
        let ids = try await pool.withConnection { connection in
            try connection.query("SELECT id FROM pgc_retry ORDER BY id").map { try $0.decode("id", as: Int.self) }
        }
        // The rerun saw the other's row: ids are 10 or 20 for the first, +1 for the rerun.
        XCTAssertEqual(ids.count, 2)
        XCTAssertTrue(ids == [10, 21] || ids == [11, 20], "\(ids)")
        try await pool.withConnection { try $0.executeScript("DROP TABLE pgc_retry") }
        await pool.close()
    }

    func testConnectionLostBeforeCommitIsRetriedOnAFreshConnection() async throws {
        let pool = PostgresPool(configuration: try TestDatabase.configuration, size: 1)
        try await pool.withConnection { connection in
            try connection.executeScript("DROP TABLE IF EXISTS pgc_lost; CREATE TABLE pgc_lost (id int PRIMARY KEY, pid int)")
        }
        let attempts = Counter()
        let pids = try await pool.withTransaction { connection -> [Int] in
            let attempt = attempts.increment()
            let pid = try connection.query("SELECT pg_backend_pid() AS pid")[0].decode("pid", as: Int.self)
            try connection.query("INSERT INTO pgc_lost VALUES ($1, $2)", [1, pid])
            if attempt == 1 {
                // The server ends this session (57P01) before COMMIT is sent.
                try connection.query("SELECT pg_terminate_backend(pg_backend_pid())")
            }
            return [pid]
        }
        XCTAssertEqual(attempts.count, 2)
        let rows = try await pool.withConnection { connection in
            try connection.query("SELECT pid FROM pgc_lost").map { try $0.decode("pid", as: Int.self) }
        }
        XCTAssertEqual(rows, pids)
        try await pool.withConnection { try $0.executeScript("DROP TABLE pgc_lost") }
        await pool.close()
    }

    func testThirtyTwoTasksOnFourConnections() async throws {
        let pool = PostgresPool(configuration: try TestDatabase.configuration, size: 4)
        try await pool.withConnection { connection in
            try connection.executeScript("DROP TABLE IF EXISTS pgc_many; CREATE TABLE pgc_many (id int PRIMARY KEY, pid int)")
        }
        let results = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for index in 0..<32 {
                group.addTask {
                    try await pool.withTransaction { connection in
                        let row = try connection.query(
                            "INSERT INTO pgc_many VALUES ($1, pg_backend_pid()) RETURNING id * 2 AS doubled, pid",
                            [index]
                        )[0]
                        return (index, try row.decode("doubled", as: Int.self))
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(results.count, 32)
        for (index, doubled) in results { XCTAssertEqual(doubled, index * 2) }
        let (rows, backends) = try await pool.withConnection { connection in
            let row = try connection.query("SELECT count(*) AS n, count(DISTINCT pid) AS p FROM pgc_many")[0]
            return (try row.decode("n", as: Int.self), try row.decode("p", as: Int.self))
        }
        XCTAssertEqual(rows, 32)
        XCTAssertLessThanOrEqual(backends, 4)
        try await pool.withConnection { try $0.executeScript("DROP TABLE pgc_many") }
        await pool.close()
        do {
            _ = try await pool.withConnection { _ in 1 }
            XCTFail("expected poolClosed")
        } catch let error as PostgresError {
            XCTAssertEqual(error.kind, .poolClosed)
        }
    }

    func testCheckoutTimeoutWhenAllConnectionsAreHeld() async throws {
        let pool = PostgresPool(configuration: try TestDatabase.configuration, size: 2, checkoutTimeout: .milliseconds(300))
        let started = Counter()
        async let first: Void = pool.withConnection { connection in
            started.increment()
            try connection.query("SELECT pg_sleep(1.5)")
        }
        async let second: Void = pool.withConnection { connection in
            started.increment()
            try connection.query("SELECT pg_sleep(1.5)")
        }
        while started.count < 2 { try await Task.sleep(for: .milliseconds(10)) }
        let clock = ContinuousClock()
        let start = clock.now
        do {
            _ = try await pool.withConnection { _ in 1 }
            XCTFail("expected a checkout timeout")
        } catch let error as PostgresError {
            XCTAssertEqual(error.kind, .checkoutTimeout)
            XCTAssertTrue(error.isConnectionProblem)
        }
        let waited = clock.now - start
        XCTAssertGreaterThanOrEqual(waited, .milliseconds(250))
        XCTAssertLessThan(waited, .milliseconds(1200))
        _ = try await (first, second)
        // Free again afterwards.
        let one = try await pool.withConnection { try $0.query("SELECT 1 AS one")[0].decode("one", as: Int.self) }
        XCTAssertEqual(one, 1)
        await pool.close()
    }

    func testRecoversAfterServerRestartAndFailsFastWhileDown() async throws {
        let pool = PostgresPool(configuration: try TestDatabase.configuration, size: 2, checkoutTimeout: .seconds(2))
        let select = { @Sendable (connection: PostgresConnection) throws -> Int in
            try connection.query("SELECT 41 + 1 AS v")[0].decode("v", as: Int.self)
        }
        // Open both connections.
        async let a = pool.withConnection { connection in usleep(100_000); return try select(connection) }
        async let b = pool.withConnection { connection in usleep(100_000); return try select(connection) }
        _ = try await (a, b)

        try assertPgCtl(["-w", "-t", "30", "-m", "fast", "restart", "-l", TestCluster.logPath])
        try await assertEventuallySucceeds(pool, within: .seconds(10), select)
        let transaction = try await pool.withTransaction { try select($0) }
        XCTAssertEqual(transaction, 42)

        // Server down: fail fast with a connection problem, no hang.
        try assertPgCtl(["-w", "-m", "immediate", "stop"])
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<3 {
            do {
                _ = try await pool.withConnection(select)
                XCTFail("expected a connection error while the server is down")
            } catch let error as PostgresError {
                XCTAssertTrue(error.isConnectionProblem, error.debugDescription)
            }
        }
        XCTAssertLessThan(clock.now - start, .seconds(3))
        try assertPgCtl(["-w", "-t", "30", "start", "-l", TestCluster.logPath])
        try await assertEventuallySucceeds(pool, within: .seconds(10), select)
        await pool.close()
    }

    private func assertEventuallySucceeds(
        _ pool: PostgresPool, within limit: Duration, _ body: @escaping @Sendable (PostgresConnection) throws -> Int
    ) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + limit
        var failures = 0
        while true {
            do {
                let value = try await pool.withConnection(body)
                XCTAssertEqual(value, 42)
                // Every connection of the pool works again.
                for _ in 0..<4 {
                    let again = try await pool.withConnection(body)
                    XCTAssertEqual(again, 42)
                }
                XCTAssertLessThanOrEqual(failures, 4)
                return
            } catch let error as PostgresError {
                XCTAssertTrue(error.isConnectionProblem, error.debugDescription)
                failures += 1
                guard clock.now < deadline else { throw error }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }
}
