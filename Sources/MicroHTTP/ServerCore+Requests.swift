import CMicroHTTPD
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reading a request out of MHD and queueing a response into it.
extension ServerCore {
    func makeRequest(
        _ connection: OpaquePointer, url: UnsafePointer<CChar>?, method: UnsafePointer<CChar>?, body: [UInt8]
    ) -> HTTPRequest {
        // Straight into the request's containers (no intermediate array of pairs).
        // Keys and values arrive undecoded (see `gpb_mhd_unescape_nothing`).
        var query = QueryParameters()
        withUnsafeMutablePointer(to: &query) { pointer in
            _ = MHD_get_connection_values(
                connection, .GET_ARGUMENT_KIND,
                { cls, _, key, value in
                    guard let cls, let key else { return .YES }
                    cls.assumingMemoryBound(to: QueryParameters.self).pointee.add(
                        PercentDecoding.query(key), value.map(PercentDecoding.query) ?? "")
                    return .YES
                },
                pointer)
        }
        var headers = HTTPHeaders()
        withUnsafeMutablePointer(to: &headers) { pointer in
            _ = MHD_get_connection_values(
                connection, .HEADER_KIND,
                { cls, _, key, value in
                    guard let cls, let key else { return .YES }
                    cls.assumingMemoryBound(to: HTTPHeaders.self).pointee.add(
                        String(cString: key), value.map { String(cString: $0) } ?? "")
                    return .YES
                },
                pointer)
        }
        // The first call refused paths that do not decode.
        let path = url.flatMap { try? PercentDecoding.path($0).get() } ?? "/"
        var request = HTTPRequest(
            method: method.map { String(cString: $0) } ?? "", path: path, query: query.last, headers: headers,
            body: body)
        request.repeatedQuery = query.repeated
        request.isTLS = configuration.tls != nil || configuration.trustForwardedProto && Self.forwardedHTTPS(headers)
        // INET6_ADDRSTRLEN is 46.
        request.remoteAddress = withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buffer in
            guard gpb_mhd_client_address(connection, buffer.baseAddress, buffer.count) == 1 else { return nil }
            return String(cString: buffer.baseAddress!)
        }
        return request
    }

    /// The proxy in front says the client came over TLS: its last `X-Forwarded-Proto`, or
    /// `proto=https` in `Forwarded`.
    static func forwardedHTTPS(_ headers: HTTPHeaders) -> Bool {
        if let proto = headers.values(for: "X-Forwarded-Proto").last {
            return proto.split(separator: ",").last.map { $0.filter { $0 != " " && $0 != "\t" }.lowercased() } == "https"
        }
        return headers["Forwarded"]?.lowercased().contains("proto=https") ?? false
    }

    /// Over TLS (direct, or through a trusted proxy): browsers are told to come back over
    /// TLS only, for a year.
    static func strictTransport(_ response: HTTPResponse, _ request: HTTPRequest) -> HTTPResponse {
        guard request.isTLS, response.headers["Strict-Transport-Security"] == nil else { return response }
        var response = response
        response.headers.add("Strict-Transport-Security", hstsValue)
        return response
    }

    static let hstsValue = "max-age=31536000"

    /// Queues `response`, or the error responder's 500 (rendered for `request`)
    /// when its status is not in 200...599.
    func queue(_ connection: OpaquePointer, _ response: HTTPResponse, request: HTTPRequest) -> MHD_Result {
        // Not one function with an optional request: making the optional copies it.
        queueValid(connection, Self.strictTransport((200...599).contains(response.status) ? response : internalError(request), request))
    }

    /// `queue` for an async handler's response (the request is no longer at hand).
    func queue(_ connection: OpaquePointer, _ response: HTTPResponse) -> MHD_Result {
        queueValid(connection, (200...599).contains(response.status) ? response : internalError(nil))
    }

    func internalError(_ request: HTTPRequest?) -> HTTPResponse {
        let response = configuration.errorResponder(.internalError, request)
        return (200...599).contains(response.status) ? response : HTTPServerErrors.plainText(.internalError, request)
    }

    /// Builds an MHD response from `response` and queues it (`MHD_queue_response`).
    func queueValid(_ connection: OpaquePointer, _ response: HTTPResponse) -> MHD_Result {
        if let stream = response.stream { return queueStream(connection, response, stream) }
        let created: OpaquePointer? =
            if response.body.isEmpty {
                MHD_create_response_from_buffer(0, nil, .RESPMEM_PERSISTENT)
            } else {
                response.body.withUnsafeBytes { bytes in
                    MHD_create_response_from_buffer(
                        bytes.count, UnsafeMutableRawPointer(mutating: bytes.baseAddress), .RESPMEM_MUST_COPY)
                }
            }
        guard let mhdResponse = created else { return .NO }
        defer { MHD_destroy_response(mhdResponse) }
        for (name, value) in response.headers {
            // The byte count rules out most names at once, exactly: the only non-ASCII
            // character that lowercases to ASCII is U+212A KELVIN SIGN ("k"), in neither name.
            let length = name.utf8.count
            if length == 14 && name.equalsIgnoringCase("Content-Length")
                || length == 17 && name.equalsIgnoringCase("Transfer-Encoding")
            {
                continue
            }
            // withCString, not the implicit String-to-pointer conversion, which copies into an array.
            _ = name.withCString { name in value.withCString { MHD_add_response_header(mhdResponse, name, $0) } }
        }
        if shuttingDown.load(ordering: .relaxed) {
            _ = MHD_add_response_header(mhdResponse, "Connection", "close")
        }
        // Served over TLS, also answers made without a request at hand (see `strictTransport`).
        if configuration.tls != nil, response.headers["Strict-Transport-Security"] == nil {
            _ = MHD_add_response_header(mhdResponse, "Strict-Transport-Security", Self.hstsValue)
        }
        return MHD_queue_response(connection, UInt32(response.status), mhdResponse)
    }
}

/// Query parameters as `HTTPRequest` holds them.
struct QueryParameters {
    var last = [String: String]()  // not `[:]`, which calls init(dictionaryLiteral:)
    var repeated = [String: [String]]()

    mutating func add(_ key: String, _ value: String) {
        if let earlier = last.updateValue(value, forKey: key) {
            repeated[key, default: [earlier]].append(value)
        }
    }
}
