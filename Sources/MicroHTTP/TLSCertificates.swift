import CMicroHTTPD
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The server's certificate and key as GnuTLS asks for them on every handshake
/// (`MHD_OPTION_HTTPS_CERT_CALLBACK`). `reload()` swaps them: connections that
/// arrive afterwards get the new certificate, established ones keep their session
/// and are not dropped (a restarted daemon would close them).
final class TLSCertificates: Sendable {
    let settings: HTTPServerTLS
    /// Every credential loaded, the one in use last. Earlier ones are kept until
    /// deinit (after the daemon stopped): a handshake that started before a reload
    /// may still use them, and GnuTLS never frees what the callback hands it.
    private let loaded: Mutex<[Credentials]>

    /// A `gpb_tls_credentials`.
    /// @unchecked Sendable: never changed after loading; freed only in deinit.
    struct Credentials: @unchecked Sendable {
        let raw: UnsafeMutablePointer<gpb_tls_credentials>
    }

    init(_ settings: HTTPServerTLS) throws {
        self.settings = settings
        loaded = Mutex([try Self.load(settings)])
    }

    /// Reads the files again; on failure the certificate in use stays.
    func reload() throws {
        let credentials = try Self.load(settings)
        loaded.withLock { $0.append(credentials) }
    }

    deinit {
        for credentials in loaded.withLock({ $0 }) { gpb_tls_credentials_free(credentials.raw) }
    }

    private static func load(_ settings: HTTPServerTLS) throws -> Credentials {
        let certificate = try readFile(settings.certificateFile)
        let key = try readFile(settings.keyFile)
        var error: Int32 = 0
        let raw = certificate.withUnsafeBufferPointer { certificate in
            key.withUnsafeBufferPointer { key in
                gpb_tls_credentials_load(certificate.baseAddress, certificate.count, key.baseAddress, key.count, &error)
            }
        }
        guard let raw else {
            throw HTTPServerStartError(
                description: "TLS: cannot use certificate \(settings.certificateFile) with key \(settings.keyFile): "
                    + String(cString: gnutls_strerror(error)))
        }
        return Credentials(raw: raw)
    }

    private static func readFile(_ path: String) throws -> [CChar] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw HTTPServerStartError(description: "TLS: cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var bytes: [CChar] = []
        var chunk = [CChar](repeating: 0, count: 16384)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else {
                throw HTTPServerStartError(description: "TLS: cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<count])
        }
    }

    /// Makes `callback` find these credentials for `connection` (at its start,
    /// before the handshake). Unretained: the daemon, and so every session, ends
    /// before the server releases this object.
    func attach(to connection: OpaquePointer) {
        guard let session = gpb_mhd_tls_session(connection) else { return }
        gnutls_session_set_ptr(session, Unmanaged.passUnretained(self).toOpaque())
    }

    /// `gnutls_certificate_retrieve_function2`: the credentials in use.
    static let callback: @convention(c) (
        gnutls_session_t?, UnsafePointer<gnutls_datum_t>?, Int32, UnsafePointer<gnutls_pk_algorithm_t>?, Int32,
        UnsafeMutablePointer<UnsafeMutablePointer<gnutls_pcert_st>?>?, UnsafeMutablePointer<UInt32>?,
        UnsafeMutablePointer<gnutls_privkey_t?>?
    ) -> Int32 = { session, _, _, _, _, certificates, count, key in
        guard let session, let certificates, let count, let key, let owner = gnutls_session_get_ptr(session) else {
            return -1
        }
        let credentials = Unmanaged<TLSCertificates>.fromOpaque(owner).takeUnretainedValue().loaded.withLock { $0.last! }
        // `certificates` is the struct's first field: the array starts at its address.
        certificates.pointee = UnsafeMutableRawPointer(credentials.raw).assumingMemoryBound(to: gnutls_pcert_st.self)
        count.pointee = credentials.raw.pointee.count
        key.pointee = credentials.raw.pointee.key
        return 0
    }
}
