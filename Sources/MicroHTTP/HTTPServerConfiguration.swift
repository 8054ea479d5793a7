import CMicroHTTPD
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Settings of an `HTTPServer`. Every libmicrohttpd limit is set explicitly
/// because its defaults have no idle timeout and no per-IP limit.
public struct HTTPServerConfiguration: Sendable {
    /// Numeric IPv4 or IPv6 address to bind (no name resolution).
    public var host: String = "127.0.0.1"
    /// Port to bind; 0 = ephemeral, read the bound port from `HTTPServer.port`.
    public var port: Int = 8080
    /// libmicrohttpd worker threads (`MHD_OPTION_THREAD_POOL_SIZE`). They parse
    /// and write HTTP and run the router's synchronous routes; every other handler
    /// runs as a Swift task, not on these threads.
    public var threadPoolSize: Int = HTTPServerConfiguration.onlineCores
    /// Maximum simultaneous connections (`MHD_OPTION_CONNECTION_LIMIT`).
    public var connectionLimit: Int = 1024
    /// Maximum simultaneous connections from one IP address
    /// (`MHD_OPTION_PER_IP_CONNECTION_LIMIT`). 0 = unlimited, the default,
    /// because tests, benchmarks and a fronting load balancer all come from a
    /// single address; set it when clients connect directly.
    public var perIPConnectionLimit: Int = 0
    /// Idle timeout of a connection, also while a request is half sent
    /// (`MHD_OPTION_CONNECTION_TIMEOUT`). It does not apply while a handler
    /// runs (the connection is suspended then): handlers need their own deadlines.
    public var connectionTimeoutSeconds: Int = 30
    /// Whole-request deadline: from the connection's start (or the end of its
    /// previous request) until the request line, headers and body are all in.
    /// A connection still sending then is closed, however steadily it trickles,
    /// which the idle timeout alone never does. Handler time does not count.
    /// 0 = none. Checked twice a second.
    public var requestTimeoutSeconds: Int = 30
    /// Maximum query parameters. More are refused with 414 through
    /// `errorResponder` before libmicrohttpd stores them (it keeps each in the
    /// connection's memory, and past `connectionMemoryLimit` closes the
    /// connection without an answer).
    public var maxQueryParameters: Int = 128
    /// Memory per connection for the request line, headers and buffers
    /// (`MHD_OPTION_CONNECTION_MEMORY_LIMIT`), 32 KiB as libmicrohttpd's own
    /// default. A header that does not fit is answered 431 by libmicrohttpd
    /// itself, with its own HTML body (measured with 0.9.75 and 32 KiB: a
    /// 32,200-byte header still fits, 32,500 bytes get 431; in between the
    /// connection is closed without an answer).
    ///
    /// It costs CPU on every request, not only memory: 0.9.75 zeroes the whole
    /// pool when a kept-alive connection starts its next request
    /// (`MHD_pool_reset`). 64 KiB took about 3.5 µs more CPU per request than
    /// 32 KiB (`GET /healthz`, 2 cores), a sixth of the whole answer.
    public var connectionMemoryLimit: Int = 32 * 1024
    /// Maximum size of the request line (query string included) plus header
    /// fields (names, values and separators), checked before the body is read;
    /// above it the answer is 431 through `errorResponder`
    /// (`.requestHeaderFieldsTooLarge`), or 414 (`.uriTooLong`) when the request
    /// target alone exceeds it, and the connection is closed. Keep it well below `connectionMemoryLimit`: larger
    /// headers never reach this check (see there). A 20 KB header gets 431.
    public var maxHeaderBytes: Int = 16 * 1024
    /// Maximum request body. Above it the answer is 413, decided from
    /// `Content-Length` before reading the body, or once an accumulating
    /// (chunked) body exceeds it; the rest of such a body is drained and
    /// discarded, and the connection is dropped if it sends another
    /// `maxBodyBytes` after the limit.
    public var maxBodyBytes: Int = 1 << 20
    /// HTTPS; nil = plain HTTP.
    public var tls: HTTPServerTLS?
    /// Behind a proxy that terminates TLS: a request with `X-Forwarded-Proto: https` (or
    /// `Forwarded: proto=https`) counts as over TLS (`HTTPRequest.isTLS`, HSTS on its
    /// answer). Off by default: any client can send the header, so only a proxy that
    /// sets it on every request may be trusted with it.
    public var trustForwardedProto = false
    /// Renders the errors the server answers itself (400, 413, 414, 431, 500).
    public var errorResponder: HTTPErrorResponder = HTTPServerErrors.plainText

    public init() {}

    static var onlineCores: Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}

/// Thrown by `HTTPServer.start()`.
public struct HTTPServerStartError: Error, CustomStringConvertible {
    public let description: String
}

/// HTTPS settings: PEM files read at `start()` and again by
/// `HTTPServer.reloadTLSCertificate()`.
public struct HTTPServerTLS: Sendable {
    /// The certificate chain, leaf first (PEM).
    public var certificateFile: String
    /// Its private key (PEM, unencrypted).
    public var keyFile: String
    /// GnuTLS priority string: TLS 1.3, and TLS 1.2 with forward-secret key exchange
    /// (ECDHE) and AEAD ciphers only (AES-GCM, ChaCha20-Poly1305: no static RSA, no CBC,
    /// no SHA-1 MAC), in the server's order rather than the client's.
    public var priorities =
        "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-RSA:-DHE-RSA:-DHE-DSS:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305"
        + ":-MAC-ALL:+AEAD:%SERVER_PRECEDENCE"

    public init(certificateFile: String, keyFile: String) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }
}
