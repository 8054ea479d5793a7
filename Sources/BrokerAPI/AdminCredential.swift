import BrokerCore
import Crypto

/// What the admin authenticates with: the SHA-256 of the admin token, so that a broker
/// can accept a token it only knows by the database's hash of it (another broker
/// generated it).
public struct AdminCredential: Sendable {
    /// Shortest admin token a broker accepts: 32 characters, 128 bits as hex.
    public static let minimumTokenLength = 32

    /// Lowercase hex, as PostgreSQL's `encode(sha256(…), 'hex')` writes it.
    public let sha256: String

    public init(sha256: String) {
        self.sha256 = sha256.lowercased()
    }

    public init(token: String) {
        self.init(sha256: Self.hash(token))
    }

    public func accepts(_ token: String) -> Bool {
        ConstantTime.equal(Self.hash(token), sha256)
    }

    static func hash(_ token: String) -> String {
        Digests.sha256Hex(Array(token.utf8))
    }
}

enum Digests {
    /// SHA-256 in lowercase hex.
    static func sha256Hex(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
