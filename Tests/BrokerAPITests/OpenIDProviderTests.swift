import BrokerCore
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import JSON
import TestHarness
import TestSupport
import XCTest

@testable import BrokerAPI

/// Sign-in through a real OpenID provider (oidc-provider-mock from PyPI, in the tests'
/// venv) on loopback: its ID tokens, got by the authorization-code flow with PKCE
/// (scripts/oidc-token.py), are bearer tokens whose `groups` claim gives the tenant and
/// role; a restart of the provider with a new key (a rotation) is picked up by the
/// running broker.
final class OpenIDProviderTests: XCTestCase {
    var provider: Process?
    var port = 0
    var issuer: String { "http://127.0.0.1:\(port)" }
    var broker: TestBroker!
    var tenantId = ""

    override func setUp() async throws {
        port = try freePort()
        try await startProvider()
        let setup = try TestBroker()
        tenantId = try await setup.tenant("ml").id
        await setup.stop()
        let map = ClaimMap([
            try ClaimMap.rule("groups=ml-admins:\(tenantId):tenant-admin"),
            try ClaimMap.rule("groups=ml-viewers:\(tenantId):viewer"),
            try ClaimMap.rule("groups=platform:-:admin"),
        ])
        broker = try TestBroker(
            databaseURL: setup.databaseURL,
            openID: OpenIDSignIn(verifier: OpenIDVerifier(issuers: [issuer], audience: "gpubroker", refreshInterval: .zero), claimMap: map))
        try await broker.region("a")
        try await broker.pool("a", "cpu", cpu: 2, memory: 4, capacity: 10)
    }

    override func tearDown() async throws {
        await broker?.stop()
        stopProvider()
    }

    func python() throws -> String {
        try XCTUnwrap(TestPython.path, "the tests' venv (scripts/test-venv) is needed: it holds oidc-provider-mock")
    }

    func startProvider() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try python())
        process.arguments = ["-m", "oidc_provider_mock", "--port", String(port)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        provider = process
        let discovery = URL(string: issuer + "/.well-known/openid-configuration")!
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if let (_, answer) = try? await URLSession.shared.data(from: discovery), (answer as? HTTPURLResponse)?.statusCode == 200 {
                return
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw TestSetupError("the OpenID provider did not answer within a minute")
    }

    /// Killed: a graceful stop waits for the broker's kept-alive connection to it.
    func stopProvider() {
        if let provider { kill(provider.processIdentifier, SIGKILL) }
        provider?.waitUntilExit()
        provider = nil
    }

    /// An ID token of `subject` in `groups`, signed in by the code flow.
    func signIn(_ subject: String, groups: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try python())
        let claims = String(decoding: JSONValue.object(["groups": .array(groups.map(JSONValue.string))]).encoded(), as: UTF8.self)
        process.arguments = [OpenAPIContractTests.repositoryRoot.appendingPathComponent("scripts/oidc-token.py").path, issuer, "gpubroker", subject, claims]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    let small: JSONValue = ["computeClass": "general-purpose", "cpu": 1, "memoryGiB": 2, "replicas": 1]

    func testAProvidersTokensActAsTheRoleTheirGroupsMapTo() async throws {
        let admin = try signIn("alice", groups: ["ml-admins"])
        let granted = try await broker.call("POST", "/v1/allocations", token: admin, json: small)
        XCTAssertEqual(granted.status, 201, granted.text)
        let made = try await broker.call("POST", "/v1/tokens", token: admin, json: ["name": "from-sso"])
        XCTAssertEqual(made.json["createdBy"]?.string, "oidc:\(issuer)#alice", "the subject is who made it")

        let viewer = try signIn("bob", groups: ["ml-viewers", "other"])
        let answer1 = try await broker.call("GET", "/v1/allocations", token: viewer)
        XCTAssertEqual(answer1.json["allocations"]?.array.count, 1)
        let refused = try await broker.call("POST", "/v1/allocations", token: viewer, json: small)
        XCTAssertEqual(refused.status, 403)

        let platform = try signIn("carol", groups: ["platform"])
        let answer2 = try await broker.call("GET", "/v1/admin/tenants", token: platform)
        XCTAssertEqual(answer2.status, 200)

        let nobody = try signIn("dave", groups: ["interns"])
        let unmapped = try await broker.call("GET", "/v1/allocations", token: nobody)
        XCTAssertEqual(unmapped.status, 403, unmapped.text)
        XCTAssertEqual(unmapped.json["detail"]?.string?.contains("no --oidc-claim-map rule"), true)
    }

    func testAKeyRotationAtTheProviderIsPickedUpWithoutARestart() async throws {
        let before = try signIn("alice", groups: ["ml-admins"])
        let answer3 = try await broker.call("GET", "/v1/allocations", token: before)
        XCTAssertEqual(answer3.status, 200)
        // The provider makes a new signing key when it starts: a rotation, old key retired.
        stopProvider()
        try await startProvider()
        let after = try signIn("alice", groups: ["ml-admins"])
        XCTAssertNotEqual(after, before)
        let answer = try await broker.call("GET", "/v1/allocations", token: after)
        XCTAssertEqual(answer.status, 200, answer.text)
        let old = try await broker.call("GET", "/v1/allocations", token: before)
        XCTAssertEqual(old.status, 401)
        XCTAssertEqual(old.header("Content-Type"), "application/problem+json")
        XCTAssertEqual(old.json["detail"]?.string, "the JWT's signature does not verify with the issuer's key")
    }

    func testATokenOfAnotherAudienceOrAnUnknownIssuerIsRefusedNamingWhy() async throws {
        let token = try signIn("alice", groups: ["ml-admins"])
        let elsewhere = try TestBroker(
            databaseURL: broker.databaseURL,
            openID: OpenIDSignIn(
                verifier: OpenIDVerifier(issuers: [issuer], audience: "another-app"),
                claimMap: ClaimMap([try ClaimMap.rule("groups=ml-admins:\(tenantId):tenant-admin")])))
        let wrongAudience = try await elsewhere.call("GET", "/v1/allocations", token: token)
        await elsewhere.stop()
        XCTAssertEqual(wrongAudience.status, 401)
        XCTAssertEqual(wrongAudience.json["detail"]?.string, "the JWT is not meant for this broker (aud)")

        let stranger = try TestBroker(
            databaseURL: broker.databaseURL,
            openID: OpenIDSignIn(verifier: OpenIDVerifier(issuers: ["https://idp.example"], audience: "gpubroker"), claimMap: ClaimMap()))
        let unknown = try await stranger.call("GET", "/v1/allocations", token: token)
        await stranger.stop()
        XCTAssertEqual(unknown.status, 401)
        XCTAssertEqual(unknown.json["detail"]?.string, "the JWT's issuer '\(issuer)' is not one this broker trusts")
    }
}
