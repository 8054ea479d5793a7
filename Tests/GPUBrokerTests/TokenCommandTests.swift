import Foundation
import JSON
import TestSupport
import XCTest

/// `gpubroker tokens`: a tenant-admin makes, lists and revokes named tokens from the CLI.
final class TokenCommandTests: XCTestCase {
    var broker: ServedBroker!

    override func setUp() async throws {
        broker = try ServedBroker()
        try await broker.waitReady()
    }

    override func tearDown() async throws {
        broker?.stop()
    }

    func testATenantAdminMakesListsAndRevokesATokenFromTheCLI() async throws {
        let owner = try await broker.seed()
        let made = try broker.cli(
            ["tokens", "create", "ci", "--role", "viewer", "--scope", "allocations:read", "--expires-in", "3600", "-o", "json"],
            token: owner)
        XCTAssertEqual(made.status, 0, made.stderr)
        XCTAssertEqual(made.json["role"], "viewer")
        XCTAssertEqual(made.json["scopes"], ["allocations:read"])
        let secret = try XCTUnwrap(made.json["token"]?.string)
        let id = try XCTUnwrap(made.json["id"]?.string)

        let reads = try broker.cli(["allocations", "list", "-o", "json"], token: secret)
        XCTAssertEqual(reads.status, 0, reads.stderr)
        let listed = try broker.cli(["tokens", "list"], token: owner)
        XCTAssertEqual(listed.status, 0, listed.stderr)
        XCTAssertTrue(listed.stdout.contains("ci") && listed.stdout.contains("viewer"), listed.stdout)
        XCTAssertFalse(listed.stdout.contains(secret), "the secret is shown once")

        let refused = try broker.cli(["tokens", "list"], token: secret)
        XCTAssertNotEqual(refused.status, 0, "a viewer manages no tokens")
        XCTAssertTrue(refused.stderr.contains("tenant-admin"), refused.stderr)

        let revoked = try broker.cli(["tokens", "revoke", id], token: owner)
        XCTAssertEqual(revoked.status, 0, revoked.stderr)
        let after = try broker.cli(["allocations", "list"], token: secret)
        XCTAssertNotEqual(after.status, 0, "revoked")
    }
}
