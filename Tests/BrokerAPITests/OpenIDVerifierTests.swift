import Crypto
import Foundation
import JSON
import Synchronization
import TestHarness
import XCTest
import _CryptoExtras

@testable import BrokerAPI

/// The JWT checks on tokens made here, with an issuer (discovery and JWKS) served on
/// loopback: each refusal names why, and a key that appears at the issuer is picked up.
final class OpenIDVerifierTests: XCTestCase {
    /// The issuer's current keys as a JWKS, served with its discovery document.
    final class Issuer: Sendable {
        final class Shared: Sendable {
            let jwks = Mutex<JSONValue>(["keys": []])
            let port = Mutex<Int>(0)
        }
        let shared = Shared()
        let server: ScriptedServer
        var url: String { "http://127.0.0.1:\(server.port)" }

        init() throws {
            let shared = self.shared
            server = try ScriptedServer { head in
                let base = "http://127.0.0.1:\(shared.port.withLock { $0 })"
                let body: JSONValue =
                    head.hasPrefix("GET /jwks ")
                    ? shared.jwks.withLock { $0 } : ["issuer": .string(base), "jwks_uri": .string(base + "/jwks")]
                let bytes = body.encoded()
                return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(bytes.count)\r\nConnection: close\r\n\r\n"
                    + String(decoding: bytes, as: UTF8.self)
            }
            shared.port.withLock { $0 = server.port }
        }
    }

    static func base64URL(_ bytes: some DataProtocol) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func sign(_ header: JSONValue, _ claims: JSONValue, _ signer: (Data) throws -> Data) rethrows -> String {
        let input = base64URL(header.encoded()) + "." + base64URL(claims.encoded())
        return input + "." + base64URL(try signer(Data(input.utf8)))
    }

    let ecKey = P256.Signing.PrivateKey()
    var issuer: Issuer!
    var verifier: OpenIDVerifier!
    let now = Date()

    override func setUp() async throws {
        issuer = try Issuer()
        issuer.shared.jwks.withLock { $0 = ["keys": [Self.jwk(ecKey, kid: "ec-1")]] }
        verifier = OpenIDVerifier(issuers: [issuer.url], audience: "gpubroker", refreshInterval: .zero)
    }

    override func tearDown() async throws {
        issuer.server.stop()
    }

    static func jwk(_ key: P256.Signing.PrivateKey, kid: String) -> JSONValue {
        let raw = key.publicKey.rawRepresentation
        return [
            "kty": "EC", "crv": "P-256", "kid": .string(kid), "x": .string(base64URL(raw.prefix(32))),
            "y": .string(base64URL(raw.suffix(32))),
        ]
    }

    func claims(_ changes: [String: JSONValue] = [:]) -> JSONValue {
        var claims: [String: JSONValue] = [
            "iss": .string(issuer.url), "sub": "alice", "aud": ["gpubroker", "other"],
            "exp": .number(now.timeIntervalSince1970 + 300), "nbf": .number(now.timeIntervalSince1970 - 10),
            "groups": ["ml-team"],
        ]
        for (name, value) in changes { claims[name] = value }
        return .object(claims)
    }

    func es256(_ claims: JSONValue, key: P256.Signing.PrivateKey? = nil, kid: String = "ec-1") throws -> String {
        try Self.sign(["alg": "ES256", "kid": .string(kid)], claims) { try (key ?? ecKey).signature(for: $0).rawRepresentation }
    }

    func refusal(_ token: String) async -> OpenIDFailure? {
        do {
            _ = try await verifier.verify(token, now: now)
            return nil
        } catch {
            return error
        }
    }

    func testAValidES256TokenGivesTheIssuerSubjectAndClaims() async throws {
        let identity = try await verifier.verify(try es256(claims()), now: now)
        XCTAssertEqual(identity.issuer, issuer.url)
        XCTAssertEqual(identity.subject, "alice")
        XCTAssertEqual(identity.claims["groups"], ["ml-team"])
    }

    func testEachBadTokenIsRefusedNamingWhy() async throws {
        let hour = now.timeIntervalSince1970 - 3600
        let expired = await refusal(try es256(claims(["exp": .number(hour)])))
        XCTAssertEqual(expired, .expired)
        let lateButWithinSkew = await refusal(try es256(claims(["exp": .number(now.timeIntervalSince1970 - 30)])))
        XCTAssertNil(lateButWithinSkew, "within the skew")
        let early = await refusal(try es256(claims(["nbf": .number(now.timeIntervalSince1970 + 3600)])))
        XCTAssertEqual(early, .notYetValid)
        let audience = await refusal(try es256(claims(["aud": "someone-else"])))
        XCTAssertEqual(audience, .wrongAudience)
        let stranger = await refusal(try es256(claims(["iss": "https://idp.example"])))
        XCTAssertEqual(stranger, .unknownIssuer("https://idp.example"))
        let forged = await refusal(try es256(claims(), key: P256.Signing.PrivateKey()))
        XCTAssertEqual(forged, .badSignature)
        let unknownKid = await refusal(try es256(claims(), kid: "nobody"))
        XCTAssertEqual(unknownKid, .unknownKey("nobody"))
        let none = await refusal(Self.sign(["alg": "none"], claims()) { _ in Data() })
        XCTAssertEqual(none, .unsupportedAlgorithm("none"))
        let garbage = await refusal("eyJ.not.ajwt")
        XCTAssertEqual(garbage.map { if case .malformed = $0 { true } else { false } }, true)
    }

    func testAnRS256TokenVerifiesAndATamperedOneDoesNot() async throws {
        let rsa = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let numbers = try rsa.publicKey.getKeyPrimitives()
        issuer.shared.jwks.withLock {
            $0 = ["keys": [["kty": "RSA", "kid": "rsa-1", "n": .string(Self.base64URL(numbers.modulus)), "e": .string(Self.base64URL(numbers.publicExponent))]]]
        }
        let token = try Self.sign(["alg": "RS256", "kid": "rsa-1"], claims()) {
            try rsa.signature(for: $0, padding: .insecurePKCS1v1_5).rawRepresentation
        }
        let identity = try await verifier.verify(token, now: now)
        XCTAssertEqual(identity.subject, "alice")
        var parts = token.split(separator: ".").map(String.init)
        parts[1] = Self.base64URL(claims(["sub": "mallory"]).encoded())
        let tampered = await refusal(parts.joined(separator: "."))
        XCTAssertEqual(tampered, .badSignature)
    }

    func testAKeyRotatedInAtTheIssuerIsPickedUpWithoutARestart() async throws {
        _ = try await verifier.verify(try es256(claims()), now: now)
        let next = P256.Signing.PrivateKey()
        issuer.shared.jwks.withLock { $0 = ["keys": [Self.jwk(next, kid: "ec-2")]] }
        let identity = try await verifier.verify(try es256(claims(), key: next, kid: "ec-2"), now: now)
        XCTAssertEqual(identity.subject, "alice")
        let retired = await refusal(try es256(claims()))
        XCTAssertEqual(retired, .unknownKey("ec-1"), "the old key is gone from the issuer")
    }
}
