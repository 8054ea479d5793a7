import Crypto
import Foundation
import JSON
import _CryptoExtras

/// Why a bearer JWT is refused: each a 401 whose detail names it.
enum OpenIDFailure: Error, Equatable {
    case malformed(String)
    case unknownIssuer(String)
    case unsupportedAlgorithm(String)
    case unknownKey(String)
    case badSignature
    case expired
    case notYetValid
    case wrongAudience
    case providerUnreachable(String)

    var detail: String {
        switch self {
        case .malformed(let why): "the bearer JWT is malformed: \(why)"
        case .unknownIssuer(let issuer): "the JWT's issuer '\(issuer.prefix(200))' is not one this broker trusts"
        case .unsupportedAlgorithm(let alg): "the JWT's algorithm '\(alg.prefix(20))' is not accepted (RS256, ES256)"
        case .unknownKey(let kid): "the JWT's key id '\(kid.prefix(100))' is not among the issuer's keys"
        case .badSignature: "the JWT's signature does not verify with the issuer's key"
        case .expired: "the JWT has expired"
        case .notYetValid: "the JWT is not valid yet (nbf)"
        case .wrongAudience: "the JWT is not meant for this broker (aud)"
        case .providerUnreachable(let why): "the issuer's keys could not be read: \(why)"
        }
    }
}

/// A compact JWS (RFC 7515) split and decoded, its signature not yet checked.
struct SignedJWT {
    var header: JSONValue
    var claims: JSONValue
    var signingInput: ArraySlice<UInt8>
    var signature: [UInt8]

    /// Whether a bearer token is shaped like a JWT (`eyJ…` and two dots), to tell it from
    /// the broker's own tokens without decoding it.
    static func looksLikeJWT(_ token: String) -> Bool {
        token.hasPrefix("eyJ") && token.utf8.lazy.filter { $0 == UInt8(ascii: ".") }.count == 2
    }

    init(_ token: String) throws(OpenIDFailure) {
        let bytes = Array(token.utf8)
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw .malformed("not three dot-separated parts") }
        guard let header = Self.base64URL(parts[0]).flatMap({ try? JSONValue.parse($0) }),
            let claims = Self.base64URL(parts[1]).flatMap({ try? JSONValue.parse($0) }),
            let signature = Self.base64URL(parts[2])
        else { throw .malformed("a part is not base64url-encoded JSON") }
        guard header.objectValue != nil, claims.objectValue != nil else { throw .malformed("header or claims not an object") }
        self.header = header
        self.claims = claims
        self.signingInput = bytes[..<(parts[1].endIndex)]
        self.signature = signature
    }

    static func base64URL(_ part: ArraySlice<UInt8>) -> [UInt8]? {
        var text = String(decoding: part, as: UTF8.self).replacingOccurrences(of: "-", with: "+")
            .replacingOccurrences(of: "_", with: "/")
        text += String(repeating: "=", count: (4 - text.utf8.count % 4) % 4)
        return Data(base64Encoded: text).map(Array.init)
    }
}

/// A public key of an issuer's JWKS, for one algorithm.
enum VerificationKey: Sendable {
    case rs256(_RSA.Signing.PublicKey)
    /// The key's raw x and y: `P256.Signing.PublicKey` is not `Sendable` (swift-crypto 3).
    case es256(Data)

    /// nil for keys of other types, curves or uses: they are skipped, not refused.
    init?(jwk: JSONValue) {
        if let use = jwk["use"]?.stringValue, use != "sig" { return nil }
        func bytes(_ name: String) -> [UInt8]? { jwk[name]?.stringValue.flatMap { SignedJWT.base64URL(ArraySlice($0.utf8)) } }
        switch (jwk["kty"]?.stringValue, jwk["crv"]?.stringValue) {
        case ("RSA"?, _):
            guard let n = bytes("n"), let e = bytes("e"), let key = try? _RSA.Signing.PublicKey(n: n, e: e) else { return nil }
            self = .rs256(key)
        case ("EC"?, "P-256"?):
            guard let x = bytes("x"), let y = bytes("y"), (try? P256.Signing.PublicKey(rawRepresentation: x + y)) != nil
            else { return nil }
            self = .es256(Data(x + y))
        default:
            return nil
        }
    }

    var algorithm: String {
        switch self {
        case .rs256: "RS256"
        case .es256: "ES256"
        }
    }

    func verifies(_ jwt: SignedJWT) -> Bool {
        let digest = SHA256.hash(data: jwt.signingInput)
        switch self {
        case .rs256(let key):
            return key.isValidSignature(
                _RSA.Signing.RSASignature(rawRepresentation: jwt.signature), for: digest, padding: .insecurePKCS1v1_5)
        case .es256(let raw):
            guard let key = try? P256.Signing.PublicKey(rawRepresentation: raw),
                let signature = try? P256.Signing.ECDSASignature(rawRepresentation: jwt.signature)
            else { return false }
            return key.isValidSignature(signature, for: digest)
        }
    }
}
