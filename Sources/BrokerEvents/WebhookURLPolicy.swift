import Dispatch
import Foundation

/// Which URLs a tenant may have the broker call: `http(s)` only, and unless the admin
/// allowed it, no host that resolves to a loopback, link-local, private, shared or
/// unspecified address, so that a tenant cannot aim the broker at internal services.
/// Registration refuses address literals and `localhost` names without resolving
/// anything (an API call never waits on DNS); every attempt resolves the name once,
/// checks each address and connects to the address it checked (`target`): a name that
/// answers a public address to the check and 127.0.0.1 to the connection (DNS
/// rebinding) never reaches loopback.
public struct WebhookURLPolicy: Sendable {
    public var allowPrivate: Bool
    /// Name → addresses (as text); getaddrinfo unless a test gives its own.
    let resolver: @Sendable (String) -> [String]

    public init(allowPrivate: Bool = false, resolver: (@Sendable (String) -> [String])? = nil) {
        self.allowPrivate = allowPrivate
        self.resolver = resolver ?? { Self.resolve($0).map(\.text) }
    }

    public static let maxLength = 2048

    /// Why the URL is refused, or nil. Resolving blocks, so it runs on a Dispatch
    /// thread, never on the cooperative pool.
    public func refusal(_ text: String, resolving: Bool) async -> String? {
        if case .refused(let reason) = await check(text, resolving: resolving) { return reason }
        return nil
    }

    /// Where an attempt connects: the URL with an `http` host replaced by the address that
    /// was checked, and the `Host` header to send. An `https` URL keeps its name (its
    /// certificate is checked against it, which a service reached by rebinding cannot pass).
    public enum Target: Sendable, Equatable {
        case refused(String)
        case connect(url: String, host: String?)
    }

    public func target(_ text: String) async -> Target {
        switch await check(text, resolving: true) {
        case .refused(let reason): return .refused(reason)
        case .allowed(let components, let address):
            guard var components, components.scheme?.lowercased() == "http", let address, let host = components.host else {
                return .connect(url: text, host: nil)
            }
            let port = components.port.map { ":\($0)" } ?? ""
            components.host = address.contains(":") ? "[\(address)]" : address
            return .connect(url: components.string ?? text, host: host + port)
        }
    }

    private enum Checked {
        case refused(String)
        /// The parsed URL and the first address checked (nil when nothing was resolved).
        case allowed(URLComponents?, String?)
    }

    private func check(_ text: String, resolving: Bool) async -> Checked {
        guard text.utf8.count <= Self.maxLength, let url = URLComponents(string: text),
            let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https"
        else { return .refused("must be an absolute http or https URL of at most \(Self.maxLength) characters") }
        guard let host = url.host, !host.isEmpty else { return .refused("must name a host") }
        if url.user != nil || url.password != nil { return .refused("must not carry credentials") }
        if url.fragment != nil { return .refused("must not have a fragment") }
        let name = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let lowered = name.lowercased()
        if !allowPrivate && (lowered == "localhost" || lowered.hasSuffix(".localhost") || lowered.hasSuffix(".localhost.")) {
            return .refused("host '\(host)' is this machine (the admin may allow that with --webhook-allow-private)")
        }
        let literal = Self.literal(name)
        if !resolving && (literal == nil || allowPrivate) { return .allowed(url, nil) }
        let resolver = self.resolver
        let addresses = await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: literal.map { [$0] } ?? resolver(name).compactMap(Self.literal)) }
        }
        if addresses.isEmpty { return .refused("host '\(host)' does not resolve") }
        if !allowPrivate, let inside = addresses.first(where: Self.isInternal) {
            return .refused(
                "host '\(host)' resolves to \(inside.text), a loopback, link-local or private address (the admin may allow those with --webhook-allow-private)")
        }
        return .allowed(url, addresses[0].text)
    }

    struct Address {
        var bytes: [UInt8]
        var text: String
    }

    /// An IPv4 or IPv6 address literal, parsed without any lookup.
    static func literal(_ host: String) -> Address? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return Address(bytes: withUnsafeBytes(of: v4) { Array($0) }, text: host) }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 { return Address(bytes: withUnsafeBytes(of: v6) { Array($0) }, text: host) }
        return nil
    }

    static func resolve(_ host: String) -> [Address] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0 else { return [] }
        defer { freeaddrinfo(list) }
        var found: [Address] = []
        var next = list
        while let info = next {
            next = info.pointee.ai_next
            guard let address = info.pointee.ai_addr else { continue }
            var text = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            getnameinfo(address, info.pointee.ai_addrlen, &text, socklen_t(text.count), nil, 0, NI_NUMERICHOST)
            let bytes: [UInt8]
            switch Int32(address.pointee.sa_family) {
            case AF_INET:
                bytes = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { withUnsafeBytes(of: $0.pointee.sin_addr) { Array($0) } }
            case AF_INET6:
                bytes = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { withUnsafeBytes(of: $0.pointee.sin6_addr) { Array($0) } }
            default:
                continue
            }
            found.append(Address(bytes: bytes, text: String(cString: text)))
        }
        return found
    }

    static func isInternal(_ address: Address) -> Bool {
        let b = address.bytes
        if b.count == 16 {
            // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible: judge the IPv4 address.
            if b[0..<10].allSatisfy({ $0 == 0 }) && (b[10] == 0xff && b[11] == 0xff || b[10] == 0 && b[11] == 0) {
                return isInternal(Address(bytes: Array(b[12..<16]), text: address.text))
            }
            return b[0] & 0xfe == 0xfc  // fc00::/7 unique local
                || b[0] == 0xfe && b[1] & 0xc0 == 0x80  // fe80::/10 link-local
                || b[0] == 0xff  // multicast
        }
        guard b.count == 4 else { return true }
        return b[0] == 0 || b[0] == 10 || b[0] == 127  // "this network", private, loopback
            || b[0] == 100 && b[1] & 0xc0 == 64  // 100.64/10 shared (carrier-grade NAT)
            || b[0] == 169 && b[1] == 254  // link-local, cloud metadata
            || b[0] == 172 && b[1] & 0xf0 == 16  // 172.16/12
            || b[0] == 192 && b[1] == 168
            || b[0] >= 224  // multicast, reserved, broadcast
    }
}
