import Crypto
import Foundation

/// Standard Webhooks signatures: `webhook-signature` is `v1,` and the base64 of
/// HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the bytes of
/// the secret after its `whsec_` prefix; several space-separated while an old secret
/// is still honoured.
public enum WebhookSignature {
    public static let secretPrefix = "whsec_"

    /// `whsec_` and 32 random bytes in base64.
    public static func newSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return secretPrefix + Data(bytes).base64EncodedString()
    }

    /// The header value for every secret given, current first.
    public static func header(secrets: [String], id: String, timestamp: Int, body: String) -> String {
        let content = Data("\(id).\(timestamp).\(body)".utf8)
        return secrets.compactMap { secret -> String? in
            guard secret.hasPrefix(secretPrefix), let key = Data(base64Encoded: String(secret.dropFirst(secretPrefix.count))) else {
                return nil
            }
            let mac = HMAC<SHA256>.authenticationCode(for: content, using: SymmetricKey(data: key))
            return "v1," + Data(mac).base64EncodedString()
        }.joined(separator: " ")
    }
}
