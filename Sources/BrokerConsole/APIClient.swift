import BrokerCore
import JSON
import MicroHTTP

/// The broker's API called in-process with the signed-in token: the console sees and
/// changes exactly what that token may through the API (same routes, same
/// authentication, tenant isolation, validation, rate limits), without a socket.
struct APIClient: Sendable {
    let api: Router
    let token: String
    /// Carried to the API's log lines, so one console request and its API calls share an id.
    let requestId: String?
    /// The browser's address: the API limits failed authentications per address.
    let remoteAddress: String?

    struct Answer: Sendable {
        var status: Int
        var json: JSONValue
        var ok: Bool { (200..<300).contains(status) }

        /// The problem+json `detail` (with the field errors), for showing on a page.
        var problem: String {
            var text = json["detail"]?.stringValue ?? json["title"]?.stringValue ?? "the API answered \(status)"
            let fields = (json["errors"]?.arrayValue ?? []).compactMap { error -> String? in
                guard let field = error["field"]?.stringValue, let message = error["message"]?.stringValue else { return nil }
                return "\(field) \(message)"
            }
            if !fields.isEmpty { text += ": " + fields.joined(separator: "; ") }
            return text
        }
    }

    struct Failure: Error {
        var answer: Answer
    }

    func call(_ method: String, _ path: String, query: [String: String] = [:], body: JSONValue? = nil) async -> Answer {
        var headers = HTTPHeaders([("Authorization", "Bearer \(token)")])
        if let requestId { headers.add("X-Request-Id", requestId) }
        if body != nil { headers.add("Content-Type", "application/json") }
        var request = HTTPRequest(method: method, path: path, query: query, headers: headers, body: body?.encoded() ?? [])
        request.remoteAddress = remoteAddress
        let response = await api.handle(request)
        let json = response.body.isEmpty ? JSONValue.null : ((try? JSONValue.parse(response.body)) ?? .null)
        return Answer(status: response.status, json: json)
    }

    /// A read that the page cannot do without: anything but 2xx is thrown.
    func get(_ path: String, query: [String: String] = [:]) async throws -> JSONValue {
        let answer = await call("GET", path, query: query)
        guard answer.ok else { throw Failure(answer: answer) }
        return answer.json
    }

    /// Every item of a paginated list (`key` names them), following `nextCursor`.
    func all(_ path: String, _ key: String) async throws -> [JSONValue] {
        var items: [JSONValue] = []
        var query = ["limit": "100"]
        repeat {
            let page = try await get(path, query: query)
            items += page[key]?.arrayValue ?? []
            query["cursor"] = page["nextCursor"]?.stringValue
        } while query["cursor"] != nil
        return items
    }
}
