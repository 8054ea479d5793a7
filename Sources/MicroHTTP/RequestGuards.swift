import CMicroHTTPD

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The checks made before a request reaches a handler, on the request line
/// (`MHD_OPTION_URI_LOG_CALLBACK`) and on the first call of the access handler
/// (headers in, no body read). A refusal is queued on that first call, so
/// libmicrohttpd closes the connection after it: after a framing problem
/// nothing else on the connection can be trusted.
extension ServerCore {
    /// The request line is in, before libmicrohttpd stores the query parameters.
    /// A request target longer than `maxHeaderBytes`, or with more than
    /// `maxQueryParameters` parameters, is cut at its query (so none is stored)
    /// and marked for a 414; nil (no per-request state) otherwise.
    func requestLine(_ uri: UnsafePointer<CChar>) -> UnsafeMutableRawPointer? {
        let length = strlen(uri)
        var parameters = 0
        var query: UnsafeMutablePointer<CChar>?
        if let mark = strchr(uri, Int32(UInt8(ascii: "?"))) {
            query = mark
            parameters = 1
            var at = mark + 1
            while at.pointee != 0 {
                if at.pointee == CChar(UInt8(ascii: "&")) { parameters += 1 }
                at += 1
            }
        }
        guard length > configuration.maxHeaderBytes || parameters > configuration.maxQueryParameters else {
            return nil
        }
        // MHD's copy of the request line, writable: MHD cuts it at the '?' right
        // after this callback and parses what follows it, which is now nothing.
        if let query { query[1] = 0 }
        return RequestSlot.uriTooLong
    }

    /// Checks a request whose headers are in; nil when it may go on. In order:
    /// header budget (request line with its query, and fields), framing
    /// (conflicting `Content-Length`, `Content-Length` with `Transfer-Encoding`,
    /// HTTP/1.1 without `Host`), the path and query escapes, the declared body size.
    func refusal(
        _ connection: OpaquePointer, url: UnsafePointer<CChar>?, method: UnsafePointer<CChar>?,
        version: UnsafePointer<CChar>?
    ) -> HTTPServerError? {
        var scan = HeaderScan()
        scan.bytes = (method.map { strlen($0) } ?? 0) + (url.map { strlen($0) } ?? 0) + 12
        _ = MHD_get_connection_values(connection, .HEADER_KIND, HeaderScan.header, &scan)
        _ = MHD_get_connection_values(connection, .GET_ARGUMENT_KIND, HeaderScan.argument, &scan)
        if scan.bytes > configuration.maxHeaderBytes { return .requestHeaderFieldsTooLarge }
        if scan.whitespaceInName {
            // RFC 9112 section 5.1: "Content-Length : 5" is not Content-Length to us but may be to a proxy.
            return .badRequest("whitespace between a header field name and its colon")
        }
        if scan.conflictingLengths {
            return .badRequest("conflicting Content-Length headers")
        }
        if scan.contentLength != nil && scan.transferEncoding {
            return .badRequest("Content-Length together with Transfer-Encoding")
        }
        if !scan.host, let version, strcmp(version, "HTTP/1.1") == 0 {
            return .badRequest("an HTTP/1.1 request needs a Host header")
        }
        if scan.nulInQuery { return .badRequest("a query parameter contains %00") }
        if let url, case .failure(let problem) = PercentDecoding.path(url) { return .badRequest(problem.message) }
        if let length = scan.contentLength, length > configuration.maxBodyBytes {
            return .payloadTooLarge(limit: configuration.maxBodyBytes)
        }
        return nil
    }
}

/// What the first call learns from the header fields and query in one pass each.
struct HeaderScan {
    /// Request line plus fields: name, value, ": " and CRLF each; query
    /// parameters: key, value and their separators.
    var bytes = 0
    var contentLength: Int?
    var conflictingLengths = false
    var transferEncoding = false
    var host = false
    var nulInQuery = false
    var whitespaceInName = false

    static let header: MHD_KeyValueIterator = { cls, _, key, value in
        guard let cls, let key else { return .YES }
        let scan = cls.assumingMemoryBound(to: HeaderScan.self)
        let valueLength = value.map { strlen($0) } ?? 0
        scan.pointee.bytes += strlen(key) + valueLength + 4
        if strpbrk(key, " \t") != nil { scan.pointee.whitespaceInName = true }
        if strcasecmp(key, "Content-Length") == 0 {
            // Unparsable values never get here: libmicrohttpd answers 400 itself.
            let length = value.flatMap { Int(String(cString: $0).trimmingOptionalWhitespace()) } ?? -1
            if let earlier = scan.pointee.contentLength, earlier != length { scan.pointee.conflictingLengths = true }
            scan.pointee.contentLength = length
        } else if strcasecmp(key, "Transfer-Encoding") == 0 {
            scan.pointee.transferEncoding = true
        } else if strcasecmp(key, "Host") == 0 {
            scan.pointee.host = true
        }
        return .YES
    }

    static let argument: MHD_KeyValueIterator = { cls, _, key, value in
        guard let cls, let key else { return .YES }
        let scan = cls.assumingMemoryBound(to: HeaderScan.self)
        scan.pointee.bytes += strlen(key) + (value.map { strlen($0) } ?? 0) + 2
        if PercentDecoding.hasEscapedNul(key) || value.map(PercentDecoding.hasEscapedNul) == true {
            scan.pointee.nulInQuery = true
        }
        return .YES
    }
}

/// `%XX` decoding of the raw path and query (libmicrohttpd is told to leave
/// them as they arrived). A malformed escape stays as it is, as libmicrohttpd's
/// own decoder leaves it.
enum PercentDecoding {
    struct Problem: Error {
        let message: String
    }

    /// The path, decoded. `%00` is refused (it used to cut the path short) and so
    /// is `%2F`: routing splits the path at its slashes, and a segment must not
    /// turn into two after decoding.
    static func path(_ raw: UnsafePointer<CChar>) -> Result<String, Problem> {
        decode(raw) { byte in
            switch byte {
            case 0: Problem(message: "the path contains %00")
            case UInt8(ascii: "/"): Problem(message: "a path segment contains an encoded '/' (%2F)")
            default: nil
            }
        }
    }

    /// A query key or value, decoded (`%00` was refused on the first call).
    static func query(_ raw: UnsafePointer<CChar>) -> String {
        (try? decode(raw) { _ in nil }.get()) ?? String(cString: raw)
    }

    static func hasEscapedNul(_ raw: UnsafePointer<CChar>) -> Bool {
        var at = UnsafeMutablePointer(mutating: raw)
        while let percent = strchr(at, Int32(UInt8(ascii: "%"))) {
            if percent[1] == CChar(UInt8(ascii: "0")) && percent[2] == CChar(UInt8(ascii: "0")) { return true }
            at = percent + 1
        }
        return false
    }

    private static func decode(_ raw: UnsafePointer<CChar>, refuse: (UInt8) -> Problem?) -> Result<String, Problem> {
        guard strchr(raw, Int32(UInt8(ascii: "%"))) != nil else { return .success(String(cString: raw)) }
        let length = strlen(raw)
        let bytes = UnsafeRawPointer(raw).assumingMemoryBound(to: UInt8.self)
        var decoded: [UInt8] = []
        decoded.reserveCapacity(length)
        var index = 0
        // An escape cut short reads the terminating NUL, which is not a hex digit.
        while index < length {
            if bytes[index] == UInt8(ascii: "%"), let high = hex(bytes[index + 1]),
                let low = hex(bytes[index + 2])
            {
                let byte = high << 4 | low
                if let problem = refuse(byte) { return .failure(problem) }
                decoded.append(byte)
                index += 3
            } else {
                decoded.append(bytes[index])
                index += 1
            }
        }
        return .success(String(decoding: decoded, as: UTF8.self))
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
