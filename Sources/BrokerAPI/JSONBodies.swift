import BrokerCore
import Foundation
import JSON
import MicroHTTP

/// Reading request bodies and writing JSON answers, the same way on every route.
enum JSONBodies {
    /// Answers' JSON: keys sorted, dates as ISO 8601 with milliseconds in UTC.
    static let encoder = SortedJSONEncoder(date: JSONWriter.iso8601)

    static func isJSON(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        let mediaType = contentType[..<(contentType.firstIndex(of: ";") ?? contentType.endIndex)]
            .trimmingOptionalWhitespace().lowercased()
        return mediaType == "application/json" || (mediaType.hasPrefix("application/") && mediaType.hasSuffix("+json"))
    }

    /// The body as JSON: 415 unless it is declared JSON, 400 unless it parses.
    static func read(_ request: HTTPRequest) throws -> JSONValue {
        guard isJSON(request.headers["Content-Type"]) else {
            throw Problem.unsupportedMediaType("send the body as 'Content-Type: application/json'")
        }
        return try parse(request.body)
    }

    /// A body that may be absent (renew): empty means `{}`.
    static func readOptional(_ request: HTTPRequest) throws -> JSONValue {
        if request.body.isEmpty { return .object([:]) }
        return try read(request)
    }

    static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        do {
            return try JSONValue.parse(bytes)
        } catch {
            if let key = error.duplicateKey {
                throw Problem.validation([FieldError(field: key, message: "appears more than once in one object")])
            }
            throw Problem.invalidRequest("the body is not valid JSON: \(error)")
        }
    }

    static func response<T: Encodable>(_ status: Int, _ value: T, headers: [(String, String)] = []) throws -> HTTPResponse {
        response(status, encoded: try encode(value), headers: headers)
    }

    /// An answer whose body `encode` wrote before.
    static func response(_ status: Int, encoded body: [UInt8], headers: [(String, String)] = []) -> HTTPResponse {
        var all = HTTPHeaders([("Content-Type", "application/json")])
        for (name, value) in headers { all.add(name, value) }
        return HTTPResponse(status: status, headers: all, body: body)
    }

    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        try encoder.encode(value)
    }

    static func noContent() -> HTTPResponse { HTTPResponse(status: 204) }
}

/// A value as answered at creation and rotation, with its secret as one more member (a
/// tenant's `token`, a webhook endpoint's `secret`): the only time the secret is shown.
struct WithSecret<Value: Encodable>: Encodable {
    var value: Value
    var name: String
    var secret: String

    func encode(to encoder: any Encoder) throws {
        try value.encode(to: encoder)
        var members = encoder.container(keyedBy: MemberName.self)
        try members.encode(secret, forKey: MemberName(stringValue: name))
    }
}

/// A member name known only at run time (`ListPage`'s items, `WithSecret`'s secret).
struct MemberName: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}
