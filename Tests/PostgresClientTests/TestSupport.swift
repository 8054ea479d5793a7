import Foundation
import PostgresClient
import Synchronization
import XCTest

struct MissingTestDatabase: Error, CustomStringConvertible {
    var description: String { "GPUBROKER_TEST_DATABASE_URL is not set: run the tests under scripts/with-postgres" }
}

/// The database started by scripts/with-postgres. A missing variable fails the test.
enum TestDatabase {
    static var url: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["GPUBROKER_TEST_DATABASE_URL"], !url.isEmpty else {
                XCTFail(MissingTestDatabase().description)
                throw MissingTestDatabase()
            }
            return url
        }
    }

    static var configuration: PostgresConfiguration {
        get throws { PostgresConfiguration(url: try url) }
    }

    static func connect() throws -> PostgresConnection {
        try PostgresConnection.connect(configuration)
    }

    /// Runs pg_ctl on the test cluster as the server's user.
    static func pgCtl(_ arguments: [String]) throws {
        let environment = ProcessInfo.processInfo.environment
        guard let data = environment["GPUBROKER_TEST_PG_DATA"], let bindir = environment["GPUBROKER_TEST_PG_BINDIR"] else {
            XCTFail("GPUBROKER_TEST_PG_DATA / GPUBROKER_TEST_PG_BINDIR are not set: run under scripts/with-postgres")
            throw MissingTestDatabase()
        }
        var argv = ["\(bindir)/pg_ctl", "-D", data] + arguments
        if let user = environment["GPUBROKER_TEST_PG_RUNAS"], !user.isEmpty {
            argv = ["runuser", "-u", user, "--"] + argv
        }
        // posix_spawn + waitpid: Foundation's Process.waitUntilExit can hang off the main thread.
        var pid: pid_t = 0
        let cArguments = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        let spawned = posix_spawnp(&pid, argv[0], nil, nil, cArguments, environ)
        XCTAssertEqual(spawned, 0, "posix_spawnp \(argv[0])")
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        XCTAssertEqual(status, 0, "pg_ctl \(arguments.joined(separator: " "))")
    }

    static var serverLogPath: String {
        let data = ProcessInfo.processInfo.environment["GPUBROKER_TEST_PG_DATA"] ?? "/tmp"
        return URL(fileURLWithPath: data).deletingLastPathComponent().appendingPathComponent("server.log").path
    }
}

/// A counter shared between a test and pool bodies.
final class Counter: Sendable {
    private let value = Mutex(0)
    @discardableResult func increment() -> Int { value.withLock { $0 += 1; return $0 } }
    var current: Int { value.withLock { $0 } }
}

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
