import BrokerCore
import Foundation
import JSON
import Synchronization

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Who signed a bearer JWT, once verified.
struct OpenIDIdentity: Sendable {
    var issuer: String
    var subject: String
    var claims: JSONValue
}

/// The issuers `serve --oidc-issuer` trusts: each one's discovery document and JWKS read
/// on first use and kept; a key id not among them reads the JWKS again (a key rotation at
/// the provider, picked up without a restart), at most once per `refreshInterval` per
/// issuer so that made-up key ids cannot make the broker hammer the provider. The reads
/// are URLSession's async calls: the request's task waits without holding a thread, and
/// the libmicrohttpd thread that took the request is free while its connection is suspended.
public final class OpenIDVerifier: Sendable {
    let issuers: [String: Issuer]
    let audience: String
    /// Clock skew allowed on `exp` and `nbf`.
    let skew: TimeInterval

    public init(issuers: [String], audience: String, skew: TimeInterval = 60, refreshInterval: Duration = .seconds(10)) {
        self.issuers = Dictionary(
            issuers.map { ($0, Issuer(url: $0, refreshInterval: refreshInterval)) }, uniquingKeysWith: { first, _ in first })
        self.audience = audience
        self.skew = skew
    }

    func verify(_ token: String, now: Date = Date()) async throws(OpenIDFailure) -> OpenIDIdentity {
        let jwt = try SignedJWT(token)
        guard let issuerURL = jwt.claims["iss"]?.stringValue else { throw .malformed("no iss claim") }
        guard let issuer = issuers[issuerURL] else { throw .unknownIssuer(issuerURL) }
        let algorithm = jwt.header["alg"]?.stringValue ?? ""
        guard algorithm == "RS256" || algorithm == "ES256" else { throw .unsupportedAlgorithm(algorithm) }
        try await issuer.verify(jwt)
        guard let expires = jwt.claims["exp"]?.numberValue else { throw .malformed("no exp claim") }
        guard now.timeIntervalSince1970 <= expires + skew else { throw .expired }
        if let notBefore = jwt.claims["nbf"]?.numberValue, now.timeIntervalSince1970 + skew < notBefore { throw .notYetValid }
        let audiences: [String] =
            switch jwt.claims["aud"] {
            case .string(let one)?: [one]
            case .array(let many)?: many.compactMap(\.stringValue)
            default: []
            }
        guard audiences.contains(audience) else { throw .wrongAudience }
        guard let subject = jwt.claims["sub"]?.stringValue, !subject.isEmpty else { throw .malformed("no sub claim") }
        return OpenIDIdentity(issuer: issuerURL, subject: subject, claims: jwt.claims)
    }

    final class Issuer: Sendable {
        let url: String
        let refreshInterval: Duration
        private struct Keys {
            var byId: [String: VerificationKey] = [:]
            var readAt: ContinuousClock.Instant?
            /// The read under way, which every request waiting for keys shares.
            var reading: Task<[String: VerificationKey], any Error>?
        }
        private let keys = Mutex(Keys())

        init(url: String, refreshInterval: Duration) {
            self.url = url
            self.refreshInterval = refreshInterval
        }

        /// Checks the signature with the key the token names (any of the issuer's keys of its
        /// algorithm when it names none). When none verifies, the keys are read again (a
        /// rotation) unless they were read within `refreshInterval`, and tried once more.
        func verify(_ jwt: SignedJWT) async throws(OpenIDFailure) {
            let kid = jwt.header["kid"]?.stringValue
            let algorithm = jwt.header["alg"]?.stringValue ?? ""
            func verifies(_ keys: [String: VerificationKey]) -> Bool {
                let candidates = kid.map { keys[$0].map { [$0] } ?? [] } ?? Array(keys.values)
                return candidates.contains { $0.algorithm == algorithm && $0.verifies(jwt) }
            }
            if verifies(keys.withLock({ $0.byId })) { return }
            guard let fresh = try await reread() else { throw kid.map { .unknownKey($0) } ?? .badSignature }
            guard verifies(fresh) else {
                throw kid.flatMap { fresh[$0] == nil ? OpenIDFailure.unknownKey($0) : nil } ?? .badSignature
            }
        }

        /// The keys read afresh, the read shared with every request waiting for it; nil when
        /// they were read within `refreshInterval`.
        private func reread() async throws(OpenIDFailure) -> [String: VerificationKey]? {
            let reading: Task<[String: VerificationKey], any Error>? = keys.withLock { state in
                if let reading = state.reading { return reading }
                if let readAt = state.readAt, ContinuousClock.now - readAt < refreshInterval { return nil }
                let url = self.url
                let task = Task { try await Self.read(url) }
                state.reading = task
                return task
            }
            guard let reading else { return nil }
            do {
                let fresh = try await reading.value
                keys.withLock { state in
                    state.byId = fresh
                    state.readAt = .now
                    state.reading = nil
                }
                return fresh
            } catch {
                keys.withLock { $0.reading = nil }
                throw .providerUnreachable(String(describing: error))
            }
        }

        /// The discovery document, then the JWKS it names: keys by id (keys without an id
        /// get their position).
        static func read(_ issuer: String) async throws -> [String: VerificationKey] {
            let base = issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer
            let discovery = try await fetch(base + "/.well-known/openid-configuration")
            guard discovery["issuer"]?.stringValue == issuer else {
                throw FetchFailure("the discovery document names another issuer")
            }
            guard let jwksURI = discovery["jwks_uri"]?.stringValue else { throw FetchFailure("no jwks_uri in the discovery document") }
            var keys: [String: VerificationKey] = [:]
            for (index, jwk) in (try await fetch(jwksURI)["keys"]?.arrayValue ?? []).enumerated() {
                if let key = VerificationKey(jwk: jwk) { keys[jwk["kid"]?.stringValue ?? "#\(index)"] = key }
            }
            return keys
        }

        struct FetchFailure: Error, CustomStringConvertible {
            var description: String
            init(_ description: String) { self.description = description }
        }

        static func fetch(_ address: String) async throws -> JSONValue {
            guard let url = URL(string: address), url.scheme == "https" || url.scheme == "http" else {
                throw FetchFailure("not an http(s) URL: \(address)")
            }
            var request = URLRequest(url: url)
            request.timeoutInterval = 5
            let (data, response) = try await URLSession.shared.data(for: request)
            guard (response as? HTTPURLResponse)?.statusCode == 200 else { throw FetchFailure("\(address) did not answer 200") }
            return try JSONValue.parse(Array(data))
        }
    }
}
