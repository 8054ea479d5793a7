/// Dispatches requests by method and path pattern.
///
/// Patterns are `/`-separated; a segment `{name}` matches any one non-empty
/// segment and is stored in `HTTPRequest.pathParameters["name"]`. Matching is
/// exact otherwise (no trailing-slash folding, no wildcards). The path is
/// matched after percent-decoding, so an encoded `%2F` splits segments too.
///
/// The path picks the resource first: of the patterns matching it, the most
/// specific wins (segments compared left to right, a literal beats a parameter), so
/// `/v1/allocations/from-manifest` is its own resource and never falls through to
/// `/v1/allocations/{id}`, whatever the method or registration order. Then the
/// method picks the route among that pattern's. A `HEAD` request uses the `GET`
/// route when no `HEAD` route matches (the server sends no body for HEAD); `Allow`
/// lists only registered methods.
///
/// No match: 404 via the error responder. The resource exists but not the method:
/// 405 with `Allow` (the resource's methods, sorted, comma-separated); the router
/// adds `Allow` itself if the responder did not.
public struct Router: Sendable {
    private struct Route: Sendable {
        var method: String
        var pattern: String
        var segments: [Segment]
        var handler: HTTPHandler
    }

    private enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    private var table: [Route] = []
    private let errorResponder: HTTPErrorResponder

    public init(errorResponder: @escaping HTTPErrorResponder = HTTPServerErrors.plainText) {
        self.errorResponder = errorResponder
    }

    /// Registers `handler` for `method` (case-sensitive, e.g. "GET") and `pattern`
    /// (e.g. "/v1/regions/{id}/pools/{poolId}").
    public mutating func add(_ method: String, _ pattern: String, _ handler: @escaping HTTPHandler) {
        let segments = Router.split(pattern).map { part -> Segment in
            if part.hasPrefix("{"), part.hasSuffix("}"), part.count >= 2 {
                return .parameter(String(part.dropFirst().dropLast()))
            }
            return .literal(String(part))
        }
        table.append(Route(method: method, pattern: pattern, segments: segments, handler: handler))
    }

    /// The registered routes, in registration order.
    public var routes: [(method: String, pattern: String)] {
        table.map { (method: $0.method, pattern: $0.pattern) }
    }

    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let parts = Router.split(request.path)
        var pathMatches: [(route: Route, parameters: [String: String])] = []
        for route in table {
            if let parameters = Router.match(route.segments, parts) {
                pathMatches.append((route, parameters))
            }
        }
        guard var resource = pathMatches.first?.route.segments else {
            return errorResponder(.notFound, request)
        }
        for match in pathMatches.dropFirst() where Router.moreSpecific(match.route.segments, than: resource) {
            resource = match.route.segments
        }
        let resourceRoutes = pathMatches.filter { !Router.moreSpecific(resource, than: $0.route.segments) }
        var candidates = resourceRoutes.filter { $0.route.method == request.method }
        if candidates.isEmpty, request.method == "HEAD" {
            candidates = resourceRoutes.filter { $0.route.method == "GET" }
        }
        guard let chosen = candidates.first else {
            let allowed = Array(Set(resourceRoutes.map(\.route.method))).sorted()
            var response = errorResponder(.methodNotAllowed(allowed: allowed), request)
            if response.headers["Allow"] == nil {
                response.headers.add("Allow", allowed.joined(separator: ", "))
            }
            return response
        }
        var routed = request
        routed.pathParameters = chosen.parameters
        return await chosen.route.handler(routed)
    }

    private static func split(_ path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: false)
    }

    private static func match(_ segments: [Segment], _ parts: [Substring]) -> [String: String]? {
        guard segments.count == parts.count else { return nil }
        var parameters: [String: String] = [:]
        for (segment, part) in zip(segments, parts) {
            switch segment {
            case .literal(let literal):
                if literal != part { return nil }
            case .parameter(let name):
                if part.isEmpty { return nil }
                parameters[name] = String(part)
            }
        }
        return parameters
    }

    /// Left to right, the first segment where one is literal and the other a parameter decides.
    private static func moreSpecific(_ a: [Segment], than b: [Segment]) -> Bool {
        for (x, y) in zip(a, b) {
            switch (x, y) {
            case (.literal, .parameter): return true
            case (.parameter, .literal): return false
            default: continue
            }
        }
        return false
    }
}
