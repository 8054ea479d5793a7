import BrokerCore
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
import JSON
#endif

/// An HTTP(S) client of the broker's `/v1` API. Answers are kept as the JSON documents the
/// broker sent, so a caller can print them unchanged; errors become `APIProblem`.
public struct BrokerClient: Sendable {
    public let server: URL
    public let token: String?
    /// Seconds one request may take.
    public var requestTimeout: TimeInterval = 30

    public init(server: URL, token: String?) {
        self.server = server
        self.token = token
    }

    /// One answer: its status, its `X-Request-Id`, its `Retry-After` seconds, and its body
    /// (`.null` when empty).
    public struct Response: Sendable {
        public var status: Int
        public var requestId: String?
        public var retryAfter: Int?
        public var body: JSONValue
    }

    /// A request body that is not JSON built here: a file's bytes with their media type.
    public struct RawBody: Sendable {
        public var bytes: [UInt8]
        public var contentType: String
        public init(bytes: [UInt8], contentType: String) {
            self.bytes = bytes
            self.contentType = contentType
        }
    }

    /// Sends one request and returns a 2xx answer; any other status throws `APIProblem`.
    /// `retry` is for requests the broker may safely see twice (reads, and writes with an
    /// `Idempotency-Key`): a lost connection is then tried again, and a 429 or 503 after its
    /// `Retry-After` (at most 5 s), twice at most.
    public func send(
        _ method: String, _ path: String, query: [URLQueryItem] = [], json: JSONValue? = nil, raw: RawBody? = nil,
        headers: [String: String] = [:], retry: Bool = false
    ) async throws -> Response {
        let request = try makeRequest(method, path, query: query, json: json, raw: raw, headers: headers)
        var attempt = 0
        while true {
            attempt += 1
            let response: Response
            do {
                response = try await perform(request)
            } catch ClientError.transport where retry && attempt < 3 {
                try await Task.sleep(for: .milliseconds(300 * attempt))
                continue
            }
            if (200..<300).contains(response.status) { return response }
            let problem = APIProblem(status: response.status, requestId: response.requestId, document: response.body)
            if retry && attempt < 3 && (response.status == 429 || response.status == 503) {
                try await Task.sleep(for: .seconds(min(response.retryAfter ?? 1, 5)))
                continue
            }
            throw problem
        }
    }

    func makeRequest(
        _ method: String, _ path: String, query: [URLQueryItem], json: JSONValue?, raw: RawBody?,
        headers: [String: String]
    ) throws -> URLRequest {
        guard var components = URLComponents(url: server, resolvingAgainstBaseURL: false) else {
            throw ClientError.configuration("the server URL '\(server)' is not valid")
        }
        // A server URL may carry a path prefix (a broker behind a proxy under /gpubroker).
        let prefix = components.percentEncodedPath.hasSuffix("/")
            ? String(components.percentEncodedPath.dropLast()) : components.percentEncodedPath
        components.percentEncodedPath = prefix + path
        if !query.isEmpty { components.queryItems = query }
        guard let url = components.url else { throw ClientError.configuration("cannot build a URL for \(path)") }
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.timeoutInterval = requestTimeout
        request.setValue("application/json", forHTTPHeaderField: "Accept")
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let json {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(json.encoded())
        } else if let raw {
            request.setValue(raw.contentType, forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(raw.bytes)
        }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        return request
    }

    func perform(_ request: URLRequest) async throws -> Response {
        let data: Data
        let urlResponse: URLResponse
        do {
            (data, urlResponse) = try await Self.session.data(for: request)
        } catch {
            throw ClientError.transport("cannot reach \(server.absoluteString): \(error.localizedDescription)")
        }
        guard let http = urlResponse as? HTTPURLResponse else {
            throw ClientError.transport("\(server.absoluteString) did not answer HTTP")
        }
        if (300..<400).contains(http.statusCode), let location = http.value(forHTTPHeaderField: "Location") {
            throw ClientError.redirected(
                "\(server.absoluteString) redirected to \(location); not followed, so that the token goes nowhere else (set --server to the broker's own URL)")
        }
        let requestId = http.value(forHTTPHeaderField: "X-Request-Id")
        let body: JSONValue
        if data.isEmpty {
            body = .null
        } else if let parsed = try? JSONValue.parse(Array(data)) {
            body = parsed
        } else {
            // Not the broker's JSON (a proxy's HTML page, say): keep the text for the message.
            body = .string(String(decoding: data.prefix(200), as: UTF8.self))
        }
        let retryAfter = http.value(forHTTPHeaderField: "Retry-After").flatMap { Int($0) }
        return Response(status: http.statusCode, requestId: requestId, retryAfter: retryAfter, body: body)
    }

    /// The broker never redirects: a redirect comes from something else on the way (a
    /// proxy, a captive portal, a hostile server) and following it would send the bearer
    /// token to wherever it points. This session follows none.
    static let session = URLSession(configuration: .ephemeral, delegate: NoRedirects(), delegateQueue: nil)

    /// `value` as one path segment: `/`, `?`, `#` and `%` percent-encoded.
    public static func segment(_ value: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#%;")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }
}

/// A failure before any answer of the broker: configuration or the network.
public enum ClientError: Error, Sendable, CustomStringConvertible {
    case configuration(String)
    case transport(String)
    /// A 3xx: not followed, and not tried again.
    case redirected(String)
    /// A short id that names no allocation, or several.
    case unresolved(String)

    public var description: String {
        switch self {
        case .configuration(let message), .transport(let message), .redirected(let message), .unresolved(let message): message
        }
    }
}

/// A non-2xx answer, read from its application/problem+json body when it has one.
public struct APIProblem: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var requestId: String?
    public var document: JSONValue

    public var code: String { document["code"]?.stringValue ?? "http_\(status)" }
    public var detail: String {
        let text = document["detail"]?.stringValue ?? document["title"]?.stringValue ?? document.stringValue
            ?? HTTPURLResponse.localizedString(forStatusCode: status)
        // A proxy's HTML page, say, on one line.
        return text.split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }
    /// One line: status, code, detail, the placement decisions of a refused grant, the request id.
    public var description: String {
        var line = "\(status) \(code): \(detail)"
        let decisions = (document["decisions"]?.arrayValue ?? []).compactMap { decision -> String? in
            guard let region = decision["region"]?.stringValue, let reason = decision["reason"]?.stringValue else {
                return nil
            }
            return "\(region): \(reason)"
        }
        if !decisions.isEmpty { line += " (\(decisions.joined(separator: "; ")))" }
        if let requestId { line += " [request \(requestId)]" }
        return line
    }
}

/// Answers every redirect with "do not follow": the 3xx itself becomes the response.
final class NoRedirects: NSObject, URLSessionTaskDelegate, Sendable {
    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void
    ) {
        completionHandler(nil)
    }
}
