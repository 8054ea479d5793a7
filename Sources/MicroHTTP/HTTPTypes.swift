/// Ordered HTTP header fields: (name, value) pairs in the order they were added,
/// with case-insensitive lookup by name. Names keep the spelling they were given.
public struct HTTPHeaders: Sendable, Sequence {
    public typealias Element = (name: String, value: String)

    private var fields: [Element]

    public init(_ pairs: [(String, String)] = []) {
        fields = pairs.map { (name: $0.0, value: $0.1) }
    }

    /// The first value for `name` (case-insensitive), or nil.
    public subscript(name: String) -> String? {
        fields.first { $0.name.equalsIgnoringCase(name) }?.value
    }

    /// All values for `name` (case-insensitive), in order.
    public func values(for name: String) -> [String] {
        fields.filter { $0.name.equalsIgnoringCase(name) }.map(\.value)
    }

    /// Appends a field, keeping any existing ones with the same name.
    public mutating func add(_ name: String, _ value: String) {
        fields.append((name: name, value: value))
    }

    /// Replaces the first field named `name` (case-insensitive) and removes the
    /// others with that name; appends the field when there is none.
    public mutating func replaceOrAdd(_ name: String, _ value: String) {
        guard let first = fields.firstIndex(where: { $0.name.equalsIgnoringCase(name) }) else {
            fields.append((name: name, value: value))
            return
        }
        fields[first] = (name: name, value: value)
        var index = fields.index(after: first)
        while index < fields.endIndex {
            if fields[index].name.equalsIgnoringCase(name) {
                fields.remove(at: index)
            } else {
                index = fields.index(after: index)
            }
        }
    }

    /// Removes every field named `name` (case-insensitive).
    public mutating func remove(_ name: String) {
        fields.removeAll { $0.name.equalsIgnoringCase(name) }
    }

    public var count: Int { fields.count }

    public func makeIterator() -> IndexingIterator<[Element]> {
        fields.makeIterator()
    }
}

extension StringProtocol where SubSequence == Substring {
    /// Without the optional whitespace (spaces and tabs) HTTP allows around a field
    /// value. It walks the UTF-8 bytes: header values are trimmed on every request.
    public func trimmingOptionalWhitespace() -> Substring {
        let bytes = self[...].utf8
        var start = bytes.startIndex, end = bytes.endIndex
        while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { bytes.formIndex(after: &start) }
        while start < end {
            let last = bytes.index(before: end)
            guard bytes[last] == 0x20 || bytes[last] == 0x09 else { break }
            end = last
        }
        return self[...][start..<end]
    }
}

extension String {
    /// `lowercased() == other.lowercased()`, without allocating when both are
    /// ASCII (header names always are in practice).
    func equalsIgnoringCase(_ other: String) -> Bool {
        let decided = utf8.withContiguousStorageIfAvailable { left in
            other.utf8.withContiguousStorageIfAvailable { right in
                String.asciiEqualIgnoringCase(left, right)
            } ?? nil
        } ?? nil
        // Non-ASCII (or not contiguous): decide as lowercased() does.
        return decided ?? (lowercased() == other.lowercased())
    }

    /// true or false when the ASCII bytes decide; nil when a non-ASCII byte comes first.
    /// A difference between two ASCII bytes after an equal ASCII prefix decides,
    /// whatever follows: an ASCII character is a starter whose canonical
    /// decomposition is itself, so the lowercased strings cannot be equivalent.
    private static func asciiEqualIgnoringCase(
        _ left: UnsafeBufferPointer<UInt8>, _ right: UnsafeBufferPointer<UInt8>
    ) -> Bool? {
        for index in 0..<Swift.min(left.count, right.count) {
            let a = left[index], b = right[index]
            if a | b >= 0x80 { return nil }
            if a != b, a | 0x20 != b | 0x20 || !(UInt8(ascii: "a")...UInt8(ascii: "z")).contains(a | 0x20) {
                return false
            }
        }
        if left.count == right.count { return true }
        let rest = left.count > right.count
            ? UnsafeBufferPointer(rebasing: left[right.count...]) : UnsafeBufferPointer(rebasing: right[left.count...])
        return rest.allSatisfy { $0 < 0x80 } ? false : nil
    }
}

/// A complete HTTP request as handed to an `HTTPHandler` (the body is fully read).
public struct HTTPRequest: Sendable {
    /// "GET", "POST", ... exactly as sent (methods are case-sensitive).
    public var method: String
    /// Percent-decoded path, without the query string. Never contains a NUL, and
    /// its slashes are the raw path's: an encoded one (`%2F`) is refused with 400.
    public var path: String
    /// Decoded query parameters; for a repeated name the last value wins.
    /// A parameter without `=` has the value "".
    public var query: [String: String]
    /// Every value of each query parameter given more than once, in order
    /// (`query` has the last); empty when none is repeated.
    public var repeatedQuery: [String: [String]]
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// Filled by `Router` from `{name}` segments of the matched pattern.
    public var pathParameters: [String: String]
    /// Numeric address of the peer (no port), when known.
    public var remoteAddress: String?
    /// Arrived over TLS on this server, or through a proxy trusted to say so
    /// (`HTTPServerConfiguration.trustForwardedProto`).
    public var isTLS = false

    public init(
        method: String, path: String, query: [String: String] = [:],
        headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.repeatedQuery = [String: [String]]()
        self.headers = headers
        self.body = body
        self.pathParameters = [String: String]()
        self.remoteAddress = nil
    }
}

/// A response produced by a handler. The server sets `Content-Length` itself
/// (a `Content-Length` or `Transfer-Encoding` header set here is ignored) and
/// adds `Content-Type` only if the handler set one.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// Set: the body is written while it is sent (see `HTTPStream`); `body` is ignored.
    public var stream: HTTPStream? = nil

    public init(status: Int, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

public typealias HTTPHandler = @Sendable (HTTPRequest) async -> HTTPResponse

/// A handler that `HTTPServer` runs on its libmicrohttpd thread (see
/// `Router.addSynchronous`): cheap, no I/O, never blocks.
public typealias HTTPSynchronousHandler = @Sendable (HTTPRequest) -> HTTPResponse

/// What the server or the router answers by itself (not a handler). An
/// `HTTPErrorResponder` renders it, so the embedding application can use its own
/// error format.
///
/// Note: `requestHeaderFieldsTooLarge` reaches the responder for headers above
/// `maxHeaderBytes`; a header that does not even fit `connectionMemoryLimit` is
/// rejected by libmicrohttpd itself (431 with its own HTML body) before any
/// Swift code runs.
public enum HTTPServerError: Sendable, Equatable {
    /// The request cannot be trusted or routed (framing, a path or query escape); the reason.
    case badRequest(String)
    case notFound
    case methodNotAllowed(allowed: [String])
    case payloadTooLarge(limit: Int)
    /// The request target is longer than `maxHeaderBytes` or has more than `maxQueryParameters` parameters.
    case uriTooLong
    case requestHeaderFieldsTooLarge
    /// A request completed after shutdown stopped taking handlers.
    case shuttingDown
    case internalError

    /// The HTTP status code this error maps to.
    public var status: Int {
        switch self {
        case .badRequest: 400
        case .notFound: 404
        case .methodNotAllowed: 405
        case .payloadTooLarge: 413
        case .uriTooLong: 414
        case .requestHeaderFieldsTooLarge: 431
        case .shuttingDown: 503
        case .internalError: 500
        }
    }
}

/// Renders an `HTTPServerError`; the request is nil when it could not be built.
public typealias HTTPErrorResponder = @Sendable (HTTPServerError, HTTPRequest?) -> HTTPResponse

/// Built-in error responders.
public enum HTTPServerErrors {
    /// `text/plain` bodies such as "Not Found"; a 405 carries `Allow`.
    public static let plainText: HTTPErrorResponder = { error, _ in
        var headers = HTTPHeaders([("Content-Type", "text/plain; charset=utf-8")])
        let text: String
        switch error {
        case .badRequest(let reason):
            text = "Bad Request: " + reason
        case .notFound:
            text = "Not Found"
        case .methodNotAllowed(let allowed):
            text = "Method Not Allowed"
            headers.add("Allow", allowed.joined(separator: ", "))
        case .payloadTooLarge(let limit):
            text = "Payload Too Large (limit \(limit) bytes)"
        case .uriTooLong:
            text = "URI Too Long"
        case .requestHeaderFieldsTooLarge:
            text = "Request Header Fields Too Large"
        case .shuttingDown:
            text = "Service Unavailable: shutting down"
        case .internalError:
            text = "Internal Server Error"
        }
        return HTTPResponse(status: error.status, headers: headers, body: Array((text + "\n").utf8))
    }
}
