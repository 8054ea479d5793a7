import Foundation
import JSON
import TestHarness
import XCTest

/// Credentials as an operator meets them across restarts and brokers: the admin token
/// one per database, the demo tenant's token kept by the data directory.
final class CredentialTests: XCTestCase {
    let directories = (0..<2).map { _ in "/tmp/gpb-cred-\(UUID().uuidString.prefix(8))" }

    override func tearDown() {
        for directory in directories { try? FileManager.default.removeItem(atPath: directory) }
    }

    func read(_ path: String) throws -> String {
        try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func testBrokersSharingADatabaseAcceptTheAdminTokenTheFirstGenerated() async throws {
        let first = try ServedBroker(environment: ["GPUBROKER_ADMIN_TOKEN": "", "GPUBROKER_DATA_DIR": directories[0]])
        defer { first.stop() }
        try await first.waitReady()
        let token = try read(directories[0] + "/admin-token")
        let second = try ServedBroker(environment: [
            "GPUBROKER_ADMIN_TOKEN": "", "GPUBROKER_DATA_DIR": directories[1], "GPUBROKER_DATABASE_URL": first.databaseURL,
        ])
        defer { second.stop() }
        try await second.waitReady()
        for broker in [first, second] {
            let tenants = try await broker.api("GET", "/v1/admin/tenants", token: token)
            XCTAssertEqual(tenants.status, 200, "\(broker.url): \(tenants.body)")
            let wrong = try await broker.api("GET", "/v1/admin/tenants", token: token + "x")
            XCTAssertEqual(wrong.status, 401)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directories[1] + "/admin-token"),
                       "the second broker generated no token of its own")
    }

    func testAShortAdminTokenIsRefused() throws {
        let refused = try Binary.run(["serve", "--database-url", try TestDatabase.create(), "--admin-token", "change-me-admin-token"])
        XCTAssertEqual(refused.status, 2, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("must be at least 32 characters (got 21)"), refused.stderr)
    }

    func testTheDemoTokenSurvivesARestartAndVerifyFindsTheEmbeddedDatabase() async throws {
        let directory = directories[0]
        let embedded = ["GPUBROKER_DATABASE_URL": "", "GPUBROKER_ADMIN_TOKEN": "", "GPUBROKER_DATA_DIR": directory, "GPUBROKER_DEMO": "1"]
        var tokens: [String] = []
        for _ in 0..<2 {
            let broker = try ServedBroker(environment: embedded)
            defer { broker.stop() }
            try await broker.waitReady(within: 60)
            tokens.append(try read(directory + "/demo-token"))
            let own = try await broker.api("GET", "/v1/allocations", token: tokens[0])
            XCTAssertEqual(own.status, 200, "the first start's demo token still works: \(own.body)")
            let running = try Binary.run(["verify", "--data-dir", directory], environment: ["GPUBROKER_DATABASE_URL": ""])
            XCTAssertEqual(running.status, 0, running.stdout + running.stderr)
            XCTAssertTrue(running.stdout.hasPrefix("ok: "), running.stdout)
        }
        XCTAssertEqual(tokens[0], tokens[1])
        let stopped = try Binary.run(["verify", "--data-dir", directory], environment: ["GPUBROKER_DATABASE_URL": ""])
        XCTAssertEqual(stopped.status, 0, "verify starts the embedded database for itself: \(stopped.stdout) \(stopped.stderr)")
        XCTAssertTrue(stopped.stdout.hasPrefix("ok: "), stopped.stdout)
        let nowhere = try Binary.run(["verify", "--data-dir", directories[1]], environment: ["GPUBROKER_DATABASE_URL": ""])
        XCTAssertEqual(nowhere.status, 2)
        XCTAssertTrue(nowhere.stderr.contains("pass --database-url"), nowhere.stderr)
    }
}
