import Foundation
import TestHarness
import XCTest

/// Issue 31, N7: the CLI followed a redirect to another host with the bearer token.
final class ClientRedirectTests: XCTestCase {
    func testTheCLINeverSendsItsTokenWhereARedirectPoints() throws {
        let elsewhere = try ScriptedServer { _ in "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{\"allocations\": []}\n" }
        defer { elsewhere.stop() }
        let redirecting = try ScriptedServer { _ in
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://localhost:\(elsewhere.port)/v1/allocations\r\nContent-Length: 0\r\n\r\n"
        }
        defer { redirecting.stop() }
        let result = try Binary.run(
            ["allocations", "list"],
            environment: ["GPUBROKER_URL": "http://127.0.0.1:\(redirecting.port)", "GPUBROKER_TOKEN": "gpb_secret_token"])
        XCTAssertEqual(redirecting.received.count, 1)
        XCTAssertTrue(redirecting.received.first?.contains("gpb_secret_token") ?? false, "the broker's own address gets the token")
        XCTAssertEqual(elsewhere.received, [], "the redirect was followed")
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("redirected to http://localhost:\(elsewhere.port)/v1/allocations; not followed"), result.stderr)
    }
}
