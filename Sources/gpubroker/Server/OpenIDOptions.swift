import ArgumentParser
import BrokerAPI
import BrokerCore
import Foundation

/// `serve`'s OpenID Connect settings: which issuers' JWTs are accepted as bearer tokens,
/// for which audience, and how their claims become a tenant and a role.
struct OpenIDOptions: ParsableArguments {
    @Option(name: .customLong("oidc-issuer"), help: ArgumentHelp(
        "Accept JWTs (RS256, ES256) of this OpenID Connect issuer, its keys read from its discovery document (repeatable). Env: GPUBROKER_OIDC_ISSUERS, comma-separated.",
        valueName: "url"))
    var issuers: [String] = []

    @Option(name: .customLong("oidc-audience"), help: ArgumentHelp(
        "The aud the JWTs must carry (the broker's client id at the issuers). Env: GPUBROKER_OIDC_AUDIENCE. Required with --oidc-issuer.",
        valueName: "aud"))
    var audience: String?

    @Option(name: .customLong("oidc-claim-map"), help: ArgumentHelp(
        "CLAIM=VALUE:TENANT:ROLE (repeatable, first match wins): an identity whose CLAIM (a string, or an array such as groups) holds VALUE acts as ROLE of the tenant with id TENANT (- for admin). Env: GPUBROKER_OIDC_CLAIM_MAP, comma-separated.",
        valueName: "rule"))
    var claimMap: [String] = []

    /// nil without an issuer.
    func verifier() throws -> (OpenIDVerifier, ClaimMap)? {
        let environment = ProcessInfo.processInfo.environment
        func list(_ name: String) -> [String] { environment[name]?.split(separator: ",").map(String.init) ?? [] }
        let issuers = list("GPUBROKER_OIDC_ISSUERS") + issuers
        let texts = list("GPUBROKER_OIDC_CLAIM_MAP") + claimMap
        guard !issuers.isEmpty else {
            if !texts.isEmpty { throw ValidationError("--oidc-claim-map needs --oidc-issuer") }
            return nil
        }
        for issuer in issuers where !(issuer.hasPrefix("https://") || issuer.hasPrefix("http://")) {
            throw ValidationError("--oidc-issuer: '\(issuer)' is not an http(s) URL")
        }
        guard let audience = audience ?? environment["GPUBROKER_OIDC_AUDIENCE"], !audience.isEmpty else {
            throw ValidationError("--oidc-issuer needs --oidc-audience")
        }
        var rules: [ClaimMap.Rule] = []
        for text in texts {
            do { rules.append(try ClaimMap.rule(text)) } catch { throw ValidationError("--oidc-claim-map: \(error)") }
        }
        if rules.isEmpty { throw ValidationError("--oidc-issuer needs at least one --oidc-claim-map rule: no identity would have a role") }
        return (OpenIDVerifier(issuers: issuers, audience: audience), ClaimMap(rules))
    }
}
