/// Dispatches requests by method and path pattern.
///
/// Patterns are `/`-separated; a segment `{name}` matches any one non-empty
/// segment and is stored in `HTTPRequest.pathParameters["name"]`. Matching is
/// exact otherwise, byte for byte on the UTF-8 path (no trailing-slash folding,
/// no wildcards, no Unicode normalisation). The path is matched after
/// percent-decoding, so an encoded `%2F` splits segments too.
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
///
/// A route is asynchronous (`add`, an `HTTPHandler`) or synchronous
/// (`addSynchronous`, an `HTTPSynchronousHandler`). `HTTPServer(configuration:router:)`
/// runs synchronous handlers directly on its libmicrohttpd thread, so they must
/// be cheap and never block; `route(for:)` says which kind matched.
///
/// Cost per request: the patterns are grouped by resource and indexed by segment
/// count when they are registered; a request compares the path's bytes with the
/// resources of its segment count only, most specific first, and allocates only
/// the path parameters of the chosen route.
public struct Router: Sendable {
    /// What `route(for:)` found for a request.
    public enum Match: Sendable {
        /// An `add` route: run this handler on the request.
        case asynchronous(HTTPHandler)
        /// An `addSynchronous` route: run this handler on the request.
        case synchronous(HTTPSynchronousHandler)
        /// No route: the 404 or 405 answer, already rendered by the error responder.
        case answer(HTTPResponse)
    }

    private enum Handler: Sendable {
        case asynchronous(HTTPHandler)
        case synchronous(HTTPSynchronousHandler)
    }

    private struct Route: Sendable {
        var method: String
        var pattern: String
        /// The names of the `{name}` segments, left to right.
        var parameterNames: [String]
        var handler: Handler
    }

    private enum Segment: Sendable, Equatable {
        case literal([UInt8])
        case parameter
    }

    /// The routes sharing one pattern shape (literals, and parameters whatever their names).
    private struct Resource: Sendable {
        var segments: [Segment]
        /// Indices into `table`, in registration order.
        var routes: [Int]
        /// The methods of `routes`, sorted and unique (the `Allow` header of a 405).
        var allowed: [String]
    }

    private var table: [Route] = []
    private var resources: [Resource] = []
    /// `bySegmentCount[n]`: indices into `resources` of the patterns with n segments,
    /// most specific first (see `moreSpecific`).
    private var bySegmentCount: [[Int]] = []
    private let errorResponder: HTTPErrorResponder

    public init(errorResponder: @escaping HTTPErrorResponder = HTTPServerErrors.plainText) {
        self.errorResponder = errorResponder
    }

    /// Registers `handler` for `method` (case-sensitive, e.g. "GET") and `pattern`
    /// (e.g. "/v1/regions/{id}/pools/{poolId}").
    public mutating func add(_ method: String, _ pattern: String, _ handler: @escaping HTTPHandler) {
        register(method, pattern, .asynchronous(handler))
    }

    /// Registers a synchronous `handler`: `HTTPServer(configuration:router:)` runs it on
    /// its libmicrohttpd thread, without suspending the connection or starting a task.
    /// Only for handlers that are cheap and never block (no I/O, no waiting on locks
    /// held for long): while it runs, the other connections of that thread wait.
    public mutating func addSynchronous(
        _ method: String, _ pattern: String, _ handler: @escaping HTTPSynchronousHandler
    ) {
        register(method, pattern, .synchronous(handler))
    }

    /// The registered routes, in registration order.
    public var routes: [(method: String, pattern: String)] {
        table.map { (method: $0.method, pattern: $0.pattern) }
    }

    /// Finds the route for `request` and fills in its `pathParameters`, or renders
    /// the 404 or 405 answer. (In place: a request is not cheap to copy.)
    public func route(for request: inout HTTPRequest) -> Match {
        let found: (resource: Int, parameterValues: [String])?
        if let result = request.path.utf8.withContiguousStorageIfAvailable({ find($0) }) {
            found = result
        } else {
            found = Array(request.path.utf8).withUnsafeBufferPointer { find($0) }
        }
        guard let found else { return .answer(errorResponder(.notFound, request)) }
        let routes = resources[found.resource].routes
        var chosen = routes.first { table[$0].method == request.method }
        if chosen == nil, request.method == "HEAD" {
            chosen = routes.first { table[$0].method == "GET" }
        }
        guard let chosen else {
            let allowed = resources[found.resource].allowed
            var response = errorResponder(.methodNotAllowed(allowed: allowed), request)
            if response.headers["Allow"] == nil {
                response.headers.add("Allow", allowed.joined(separator: ", "))
            }
            return .answer(response)
        }
        if !found.parameterValues.isEmpty {
            // Names of the chosen route, values of the matched path (same segments
            // for every route of the resource); a repeated name keeps the last value.
            var parameters: [String: String] = [:]
            for (name, value) in zip(table[chosen].parameterNames, found.parameterValues) {
                parameters[name] = value
            }
            request.pathParameters = parameters
        }
        switch table[chosen].handler {
        case .asynchronous(let handler): return .asynchronous(handler)
        case .synchronous(let handler): return .synchronous(handler)
        }
    }

    /// Runs the matched route (a synchronous one inline) or returns the 404 or 405 answer.
    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        var request = request
        switch route(for: &request) {
        case .asynchronous(let handler): return await handler(request)
        case .synchronous(let handler): return handler(request)
        case .answer(let response): return response
        }
    }

    // MARK: Registration

    private mutating func register(_ method: String, _ pattern: String, _ handler: Handler) {
        var segments: [Segment] = []
        var parameterNames: [String] = []
        for part in pattern.split(separator: "/", omittingEmptySubsequences: false) {
            if part.hasPrefix("{"), part.hasSuffix("}"), part.count >= 2 {
                segments.append(.parameter)
                parameterNames.append(String(part.dropFirst().dropLast()))
            } else {
                segments.append(.literal(Array(part.utf8)))
            }
        }
        table.append(Route(method: method, pattern: pattern, parameterNames: parameterNames, handler: handler))
        let routeIndex = table.count - 1
        if let existing = resources.firstIndex(where: { $0.segments == segments }) {
            resources[existing].routes.append(routeIndex)
            resources[existing].allowed = Array(Set(resources[existing].routes.map { table[$0].method })).sorted()
            return
        }
        resources.append(Resource(segments: segments, routes: [routeIndex], allowed: [method]))
        while bySegmentCount.count <= segments.count { bySegmentCount.append([]) }
        bySegmentCount[segments.count].append(resources.count - 1)
        // Two resources of one segment count that are equally specific cannot both
        // match a path (their literals differ somewhere), so ties need no order.
        let resources = self.resources
        bySegmentCount[segments.count].sort {
            Router.moreSpecific(resources[$0].segments, than: resources[$1].segments)
        }
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

    // MARK: Matching

    /// The most specific resource whose pattern matches `path`, with the values of
    /// its parameter segments, left to right. Walks the path once per candidate (a
    /// few per segment count), comparing as it goes: no allocation unless a
    /// parameter matches.
    private func find(_ path: UnsafeBufferPointer<UInt8>) -> (resource: Int, parameterValues: [String])? {
        let slash = UInt8(ascii: "/")
        var segmentCount = 1
        for byte in path where byte == slash { segmentCount += 1 }
        guard segmentCount < bySegmentCount.count else { return nil }
        for candidate in bySegmentCount[segmentCount] where Router.matches(resources[candidate].segments, path) {
            var values: [String] = []
            var start = 0
            for segment in resources[candidate].segments {
                var end = start
                while end < path.count, path[end] != slash { end += 1 }
                if case .parameter = segment {
                    values.append(String(decoding: UnsafeBufferPointer(rebasing: path[start..<end]), as: UTF8.self))
                }
                start = end + 1
            }
            return (candidate, values)
        }
        return nil
    }

    /// Whether `path` (with as many segments as `segments`) matches them.
    private static func matches(_ segments: [Segment], _ path: UnsafeBufferPointer<UInt8>) -> Bool {
        let slash = UInt8(ascii: "/")
        var start = 0
        for segment in segments {
            var end = start
            while end < path.count, path[end] != slash { end += 1 }
            switch segment {
            case .parameter:
                if end == start { return false }
            case .literal(let literal):
                if literal.count != end - start { return false }
                for (offset, byte) in literal.enumerated() where path[start + offset] != byte { return false }
            }
            start = end + 1
        }
        return true
    }
}
