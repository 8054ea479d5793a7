import Foundation
import MicroHTTP
import TestHarness
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Test methods are synchronous on purpose: the raw client blocks, and blocking
/// the cooperative pool (2 threads here) would starve the handlers under test.
final class MicroHTTPTests: XCTestCase {

    // MARK: Fixtures

    static func text(_ status: Int, _ text: String) -> HTTPResponse {
        HTTPResponse(
            status: status, headers: HTTPHeaders([("Content-Type", "text/plain")]), body: Array(text.utf8))
    }

    static func makeRouter() -> Router {
        var router = Router()
        router.add("GET", "/hello") { _ in text(200, "hello") }
        router.add("POST", "/echo") { request in
            HTTPResponse(
                status: 200, headers: HTTPHeaders([("Content-Type", "application/octet-stream")]),
                body: request.body)
        }
        router.add("GET", "/v1/regions/{id}/pools/{poolId}") { request in
            text(200, "region=\(request.pathParameters["id"] ?? "-") pool=\(request.pathParameters["poolId"] ?? "-")")
        }
        // Parameter route registered first: the literal one must still win.
        router.add("GET", "/v1/allocations/{id}") { request in
            text(200, "allocation \(request.pathParameters["id"] ?? "-")")
        }
        router.add("POST", "/v1/allocations/{id}") { request in
            text(200, "post allocation \(request.pathParameters["id"] ?? "-")")
        }
        router.add("POST", "/v1/allocations/from-manifest") { _ in text(201, "manifest") }
        router.add("GET", "/query") { request in
            let rendered = request.query.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            return text(200, rendered.joined(separator: "&"))
        }
        router.add("GET", "/info") { request in
            text(200, "\(request.remoteAddress ?? "nil") \(request.headers["x-custom"] ?? "nil")")
        }
        router.add("GET", "/slow") { _ in
            try? await Task.sleep(for: .milliseconds(500))
            return text(200, "slow done")
        }
        router.add("GET", "/bad-status") { _ in HTTPResponse(status: 42) }
        router.add("GET", "/tls") { request in text(200, "tls=\(request.isTLS)") }
        router.add("GET", "/thread") { _ in text(200, threadName()) }
        // Synchronous routes: run on the server's own thread.
        router.addSynchronous("GET", "/sync/{id}") { request in
            var response = text(
                200,
                "sync id=\(request.pathParameters["id"] ?? "-") q=\(request.query["q"] ?? "-") "
                    + "custom=\(request.headers["x-custom"] ?? "-") from \(request.remoteAddress ?? "nil")")
            response.headers.add("X-Thread", threadName())
            return response
        }
        router.addSynchronous("PUT", "/sync-echo") { request in
            HTTPResponse(
                status: 200, headers: HTTPHeaders([("Content-Type", "application/octet-stream")]), body: request.body)
        }
        router.addSynchronous("GET", "/mixed") { _ in text(200, "mixed get") }
        router.addSynchronous("GET", "/sync-bad-status") { _ in HTTPResponse(status: 1000) }
        router.add("POST", "/mixed") { _ in text(201, "mixed post") }
        router.addSynchronous("GET", "/sync-slow") { _ in
            usleep(300_000)  // blocks its MHD thread: only for the shutdown test
            return text(200, "slow sync done")
        }
        return router
    }

    /// The calling thread's name (libmicrohttpd names its workers "MHD-...").
    static func threadName() -> String {
        let name = try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)
        return name?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
    }

    func startServer(_ configure: (inout HTTPServerConfiguration) -> Void = { _ in }) throws -> HTTPServer {
        var configuration = HTTPServerConfiguration()
        configuration.port = 0
        configure(&configuration)
        let server = HTTPServer(configuration: configuration, router: Self.makeRouter())
        try server.start()
        addTeardownBlock { Self.blockingShutdown(server) }
        XCTAssertNotEqual(server.port, 0)
        return server
    }

    static func blockingShutdown(_ server: HTTPServer) {
        let done = DispatchSemaphore(value: 0)
        Task {
            await server.shutdown()
            done.signal()
        }
        done.wait()
    }

    // MARK: Router in process

    func testRouterInProcess() async {
        let router = Self.makeRouter()
        XCTAssertEqual(router.routes.count, 18)
        XCTAssertEqual(router.routes[3].method, "GET")
        XCTAssertEqual(router.routes[3].pattern, "/v1/allocations/{id}")

        var response = await router.handle(HTTPRequest(method: "POST", path: "/v1/allocations/from-manifest"))
        XCTAssertEqual(response.status, 201)
        XCTAssertEqual(String(decoding: response.body, as: UTF8.self), "manifest")

        response = await router.handle(HTTPRequest(method: "GET", path: "/v1/allocations/a-1"))
        XCTAssertEqual(String(decoding: response.body, as: UTF8.self), "allocation a-1")

        // The literal path is its own resource: other methods do not fall through to {id}.
        response = await router.handle(HTTPRequest(method: "PUT", path: "/v1/allocations/from-manifest"))
        XCTAssertEqual(response.status, 405)
        XCTAssertEqual(response.headers["allow"], "POST")
        response = await router.handle(HTTPRequest(method: "GET", path: "/v1/allocations/from-manifest"))
        XCTAssertEqual(response.status, 405)

        response = await router.handle(HTTPRequest(method: "PUT", path: "/v1/allocations/a-1"))
        XCTAssertEqual(response.headers["allow"], "GET, POST")

        response = await router.handle(HTTPRequest(method: "GET", path: "/v1/allocations/"))
        XCTAssertEqual(response.status, 404)

        response = await router.handle(HTTPRequest(method: "HEAD", path: "/hello"))
        XCTAssertEqual(response.status, 200)

        response = await router.handle(HTTPRequest(method: "GET", path: "/sync/s-1"))
        XCTAssertTrue(String(decoding: response.body, as: UTF8.self).hasPrefix("sync id=s-1 "))
    }

    func testRouteForTellsSynchronousAsynchronousAndErrors() {
        let router = Self.makeRouter()
        var request = HTTPRequest(method: "GET", path: "/sync/a b")
        guard case .synchronous(let handler) = router.route(for: &request) else {
            return XCTFail("GET /sync/{id} is synchronous")
        }
        XCTAssertEqual(request.pathParameters, ["id": "a b"])
        XCTAssertTrue(String(decoding: handler(request).body, as: UTF8.self).hasPrefix("sync id=a b "))
        request = HTTPRequest(method: "HEAD", path: "/mixed")
        guard case .synchronous = router.route(for: &request) else {
            return XCTFail("HEAD falls back to the synchronous GET route")
        }
        request = HTTPRequest(method: "GET", path: "/v1/allocations/x")
        guard case .asynchronous = router.route(for: &request) else {
            return XCTFail("GET /v1/allocations/{id} is async")
        }
        XCTAssertEqual(request.pathParameters, ["id": "x"])
        request = HTTPRequest(method: "POST", path: "/mixed")
        guard case .asynchronous = router.route(for: &request) else { return XCTFail("POST /mixed is async") }
        request = HTTPRequest(method: "GET", path: "/sync/")
        guard case .answer(let missing) = router.route(for: &request) else {
            return XCTFail("an empty segment matches no parameter")
        }
        XCTAssertEqual(missing.status, 404)
        request = HTTPRequest(method: "PUT", path: "/mixed")
        guard case .answer(let wrong) = router.route(for: &request) else { return XCTFail("PUT /mixed is not routed") }
        XCTAssertEqual(wrong.status, 405)
        XCTAssertEqual(wrong.headers["Allow"], "GET, POST")
        request = HTTPRequest(method: "GET", path: "/sync/a/b")
        guard case .answer(let deeper) = router.route(for: &request) else {
            return XCTFail("one parameter matches one segment")
        }
        XCTAssertEqual(deeper.status, 404)
        XCTAssertEqual(request.pathParameters, [:], "no route, no parameters")
    }

    func testCustomErrorResponderInRouter() async {
        var router = Router { error, _ in
            HTTPResponse(
                status: error.status, headers: HTTPHeaders([("Content-Type", "application/problem+json")]),
                body: Array("{\"status\":\(error.status)}".utf8))
        }
        router.add("GET", "/a") { _ in HTTPResponse(status: 204) }
        let missing = await router.handle(HTTPRequest(method: "GET", path: "/b"))
        XCTAssertEqual(missing.status, 404)
        XCTAssertEqual(missing.headers["content-type"], "application/problem+json")
        let wrong = await router.handle(HTTPRequest(method: "POST", path: "/a"))
        XCTAssertEqual(wrong.status, 405)
        XCTAssertEqual(wrong.headers["Allow"], "GET")  // added by the router
    }

    func testHeadersCaseInsensitiveAndOrdered() {
        var headers = HTTPHeaders([("Set-Cookie", "a"), ("X-A", "1")])
        headers.add("set-cookie", "b")
        XCTAssertEqual(headers["SET-COOKIE"], "a")
        XCTAssertEqual(headers.values(for: "Set-Cookie"), ["a", "b"])
        headers.replaceOrAdd("Set-Cookie", "c")
        XCTAssertEqual(headers.map(\.name), ["Set-Cookie", "X-A"])
        XCTAssertEqual(headers["set-cookie"], "c")
        headers.replaceOrAdd("X-B", "2")
        XCTAssertEqual(headers.map(\.value), ["c", "1", "2"])
        // Names compare as lowercased() does, non-ASCII too.
        headers.add("Straße", "s")
        XCTAssertEqual(headers["STRAßE"], "s")
        XCTAssertNil(headers["STRASSE"])
        headers.add("\u{212A}ey", "kelvin")  // KELVIN SIGN lowercases to "k"
        XCTAssertEqual(headers["KEY"], "kelvin")
        XCTAssertNil(headers["X-"])
        XCTAssertNil(headers["X-AB"])
    }

    // MARK: Over a socket

    func testRoutingWithPathParametersOverSocket() throws {
        let server = try startServer()
        let response = try RawClient.request(port: server.port, "GET", "/v1/regions/eu-1/pools/p%2042")
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.text, "region=eu-1 pool=p 42")
        XCTAssertEqual(response.headers["Content-Type"], "text/plain")
    }

    func testLiteralSegmentBeatsParameterOverSocket() throws {
        let server = try startServer()
        let literal = try RawClient.request(port: server.port, "POST", "/v1/allocations/from-manifest", body: Array("x".utf8))
        XCTAssertEqual(literal.status, 201)
        XCTAssertEqual(literal.text, "manifest")
        let parameter = try RawClient.request(port: server.port, "GET", "/v1/allocations/abc")
        XCTAssertEqual(parameter.status, 200)
        XCTAssertEqual(parameter.text, "allocation abc")
        let postParameter = try RawClient.request(port: server.port, "POST", "/v1/allocations/abc", body: Array("x".utf8))
        XCTAssertEqual(postParameter.text, "post allocation abc")
    }

    func testNotFoundAndMethodNotAllowed() throws {
        let server = try startServer()
        let missing = try RawClient.request(port: server.port, "GET", "/nope")
        XCTAssertEqual(missing.status, 404)
        XCTAssertEqual(missing.text, "Not Found\n")
        let wrong = try RawClient.request(port: server.port, "DELETE", "/v1/allocations/from-manifest")
        XCTAssertEqual(wrong.status, 405)
        XCTAssertEqual(wrong.headers["Allow"], "POST")
        let wrongOnParameter = try RawClient.request(port: server.port, "DELETE", "/v1/allocations/abc")
        XCTAssertEqual(wrongOnParameter.status, 405)
        XCTAssertEqual(wrongOnParameter.headers["Allow"], "GET, POST")
    }

    func testQueryHeadersRemoteAddressHead() throws {
        let server = try startServer()
        let query = try RawClient.request(port: server.port, "GET", "/query?a=1&b=x%20y&a=2&flag")
        XCTAssertEqual(query.status, 200)
        XCTAssertEqual(query.text, "a=2&b=x y&flag=")
        let info = try RawClient.request(port: server.port, "GET", "/info", headers: ["X-Custom: yes"])
        XCTAssertEqual(info.text, "127.0.0.1 yes")
        let head = try RawClient.request(port: server.port, "HEAD", "/hello")
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.headers["Content-Length"], "5")
    }

    func testInvalidHandlerStatusBecomes500() throws {
        let server = try startServer()
        for path in ["/bad-status", "/sync-bad-status"] {
            let response = try RawClient.request(port: server.port, "GET", path)
            XCTAssertEqual(response.status, 500, path)
            XCTAssertEqual(response.text, "Internal Server Error\n", path)
        }
    }

    func testBodyInManySmallPiecesIsReassembled() throws {
        let server = try startServer()
        let body = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let client = try RawClient(port: server.port)
        defer { client.close() }
        try client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n")
        var offset = 0
        var piece = 1
        while offset < body.count {
            let end = min(body.count, offset + piece * 37)
            try client.send(Array(body[offset..<end]))
            offset = end
            piece += 1
            usleep(3_000)
        }
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.body.count, body.count)
        XCTAssertTrue(response.body == body, "echoed body differs")
    }

    func testDeclaredContentLengthAboveLimitGets413() throws {
        let server = try startServer()
        let client = try RawClient(port: server.port)
        defer { client.close() }
        try client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \((1 << 20) + 1)\r\n\r\n")
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 413)
        XCTAssertEqual(response.text, "Payload Too Large (limit 1048576 bytes)\n")
        // Exactly the limit is accepted.
        let atLimit = try RawClient.request(port: server.port, "POST", "/echo", body: [UInt8](repeating: 65, count: 1 << 20))
        XCTAssertEqual(atLimit.status, 200)
        XCTAssertEqual(atLimit.body.count, 1 << 20)
    }

    func testChunkedBodyGrowingPastLimitGets413() throws {
        let server = try startServer { $0.errorResponder = { error, request in
            HTTPResponse(status: error.status, body: Array("custom \(error.status) \(request?.path ?? "nil")".utf8))
        } }
        let client = try RawClient(port: server.port)
        defer { client.close() }
        try client.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        let chunk = [UInt8](repeating: 66, count: 64 * 1024)
        for _ in 0..<17 {  // 17 × 64 KiB = 1.0625 MiB
            try client.send(Array("10000\r\n".utf8) + chunk + Array("\r\n".utf8))
        }
        try client.send("0\r\n\r\n")
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 413)
        XCTAssertEqual(response.text, "custom 413 /echo")
        // A chunked body under the limit is reassembled.
        let small = try RawClient(port: server.port)
        defer { small.close() }
        try small.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        let ok = try small.readResponse()
        XCTAssertEqual(ok.status, 200)
        XCTAssertEqual(ok.text, "abcde")
    }

    func testHugeHeaderGets431AndServerKeepsServing() throws {
        let server = try startServer()
        let big = String(repeating: "a", count: 20 * 1024)
        let response = try RawClient.request(port: server.port, "GET", "/hello", headers: ["X-Big: \(big)"])
        XCTAssertEqual(response.status, 431)  // maxHeaderBytes (16 KiB), through the error responder
        XCTAssertEqual(response.text, "Request Header Fields Too Large\n")
        // Above connectionMemoryLimit (32 KiB) libmicrohttpd 0.9.75 answers 431 itself.
        let huge = String(repeating: "b", count: 40 * 1024)
        let rejectedByMHD = try RawClient.request(port: server.port, "GET", "/hello", headers: ["X-Huge: \(huge)"])
        XCTAssertEqual(rejectedByMHD.status, 431)
        XCTAssertNotEqual(rejectedByMHD.text, "Request Header Fields Too Large\n")
        // Just under the limit is fine.
        let fits = try RawClient.request(
            port: server.port, "GET", "/hello", headers: ["X-Fits: \(String(repeating: "c", count: 15 * 1024))"])
        XCTAssertEqual(fits.status, 200)
        let next = try RawClient.request(port: server.port, "GET", "/hello")
        XCTAssertEqual(next.status, 200)
        XCTAssertEqual(next.text, "hello")
    }

    func testKeepAliveServesTwoRequestsOnOneConnection() throws {
        let server = try startServer()
        let client = try RawClient(port: server.port)
        defer { client.close() }
        try client.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        let first = try client.readResponse()
        XCTAssertEqual(first.status, 200)
        XCTAssertEqual(first.text, "hello")
        XCTAssertNotEqual(first.headers["Connection"]?.lowercased(), "close")
        try client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz")
        let second = try client.readResponse()
        XCTAssertEqual(second.status, 200)
        XCTAssertEqual(second.text, "xyz")
    }

    func testSynchronousRouteAnswersOnTheServerThreadAndKeepsAlive() throws {
        let server = try startServer()
        let client = try RawClient(port: server.port)
        defer { client.close() }
        for round in 0..<3 {
            try client.send("GET /sync/r\(round)?q=\(round) HTTP/1.1\r\nHost: x\r\nX-Custom: c\(round)\r\n\r\n")
            let response = try client.readResponse()
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.text, "sync id=r\(round) q=\(round) custom=c\(round) from 127.0.0.1")
            XCTAssertEqual(response.headers["Content-Type"], "text/plain")
            XCTAssertNotEqual(response.headers["Connection"]?.lowercased(), "close", "kept alive")
            XCTAssertEqual(response.headers["X-Thread"]?.hasPrefix("MHD"), true, "ran on a libmicrohttpd thread")
        }
        // A body reaches a synchronous handler; async and sync routes alternate on one connection.
        try client.send("PUT /sync-echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        let echoed = try client.readResponse()
        XCTAssertEqual(echoed.status, 200)
        XCTAssertEqual(echoed.text, "hello")
        try client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz")
        XCTAssertEqual(try client.readResponse().text, "xyz")
        try client.send("GET /mixed HTTP/1.1\r\nHost: x\r\n\r\n")
        let last = try client.readResponse()
        XCTAssertEqual(last.text, "mixed get")
        XCTAssertNotEqual(last.headers["Connection"]?.lowercased(), "close")
        let thread = try RawClient.request(port: server.port, "GET", "/thread")
        XCTAssertEqual(thread.status, 200)
        XCTAssertFalse(thread.text.hasPrefix("MHD"), "async handlers run in tasks, not on \(thread.text)")
    }

    func testSynchronousRouteHeadAndErrorsOverSocket() throws {
        let server = try startServer()
        let head = try RawClient.request(port: server.port, "HEAD", "/mixed")
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.headers["Content-Length"], "9")
        XCTAssertEqual(head.body, [])
        let post = try RawClient.request(port: server.port, "POST", "/mixed", body: Array("x".utf8))
        XCTAssertEqual(post.status, 201)
        XCTAssertEqual(post.text, "mixed post")
        let wrong = try RawClient.request(port: server.port, "PUT", "/mixed", body: Array("x".utf8))
        XCTAssertEqual(wrong.status, 405)
        XCTAssertEqual(wrong.headers["Allow"], "GET, POST")
        XCTAssertEqual(wrong.text, "Method Not Allowed\n")
        let missing = try RawClient.request(port: server.port, "GET", "/sync/")
        XCTAssertEqual(missing.status, 404)
        XCTAssertEqual(missing.text, "Not Found\n")
        // Answered on the MHD thread too: 404 and 405 keep the connection alive.
        let client = try RawClient(port: server.port)
        defer { client.close() }
        for (method, target, status) in [("GET", "/nope", 404), ("DELETE", "/mixed", 405), ("GET", "/sync/ok", 200)] {
            try client.send("\(method) \(target) HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try client.readResponse()
            XCTAssertEqual(response.status, status, target)
            XCTAssertNotEqual(response.headers["Connection"]?.lowercased(), "close", target)
        }
    }

    func testTwoHundredConcurrentConnections() throws {
        let server = try startServer()
        var clients: [RawClient] = []
        defer { clients.forEach { $0.close() } }
        for _ in 0..<200 { clients.append(try RawClient(port: server.port)) }
        for (index, client) in clients.enumerated() {
            try client.send("GET /v1/allocations/n\(index) HTTP/1.1\r\nHost: x\r\n\r\n")
        }
        var answered = 0
        for (index, client) in clients.enumerated() {
            let response = try client.readResponse()
            XCTAssertEqual(response.status, 200)
            if response.text == "allocation n\(index)" { answered += 1 }
        }
        XCTAssertEqual(answered, 200)
    }

    func testHalfSentRequestsDoNotDelayOthers() throws {
        let server = try startServer()
        var stalled: [RawClient] = []
        defer { stalled.forEach { $0.close() } }
        for _ in 0..<200 {
            let client = try RawClient(port: server.port)
            try client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            stalled.append(client)
        }
        let started = Date()
        let response = try RawClient.request(port: server.port, "GET", "/hello")
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.text, "hello")
        XCTAssertLessThan(elapsed, 1.0)
    }

    func testGracefulShutdownFinishesInFlightAndRefusesNew() throws {
        var configuration = HTTPServerConfiguration()
        configuration.port = 0
        let router = Self.makeRouter()
        let server = HTTPServer(configuration: configuration) { await router.handle($0) }
        try server.start()
        let port = server.port

        let slow = BackgroundRequest(port: port, "GET", "/slow")
        usleep(150_000)  // the slow handler is running now
        let shutdownDone = DispatchSemaphore(value: 0)
        let shutdownStarted = Date()
        Task {
            await server.shutdown()
            shutdownDone.signal()
        }
        usleep(100_000)
        XCTAssertEqual(RawClient.connectErrno(port: port), ECONNREFUSED, "new connections must be refused")
        XCTAssertEqual(shutdownDone.wait(timeout: .now() + 5), .success)
        XCTAssertGreaterThan(Date().timeIntervalSince(shutdownStarted), 0.2, "shutdown waited for the handler")
        let response = slow.response()
        XCTAssertEqual(response?.status, 200)
        XCTAssertEqual(response?.text, "slow done")
        XCTAssertEqual(response?.headers["Connection"]?.lowercased(), "close")
        // Idempotent.
        Self.blockingShutdown(server)
    }

    func testShutdownWaitsForARunningSynchronousHandler() throws {
        let server = try startServer()
        let slow = BackgroundRequest(port: server.port, "GET", "/sync-slow")
        usleep(100_000)  // the synchronous handler is running on its MHD thread now
        let started = Date()
        Self.blockingShutdown(server)
        XCTAssertGreaterThan(Date().timeIntervalSince(started), 0.1, "shutdown waited for the handler")
        let response = slow.response()
        XCTAssertEqual(response?.status, 200)
        XCTAssertEqual(response?.text, "slow sync done")
        XCTAssertEqual(response?.headers["Connection"]?.lowercased(), "close")
    }

    func testSynchronousRouteDuringShutdownAnswersWithConnectionClose() throws {
        let server = try startServer()
        let port = server.port
        let keptAlive = try RawClient(port: port)
        defer { keptAlive.close() }
        try keptAlive.send("GET /sync/before HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertNotEqual(try keptAlive.readResponse().headers["Connection"]?.lowercased(), "close")

        let slow = BackgroundRequest(port: port, "GET", "/slow")  // keeps shutdown waiting
        usleep(100_000)
        let shutdownDone = DispatchSemaphore(value: 0)
        Task {
            await server.shutdown()
            shutdownDone.signal()
        }
        usleep(100_000)  // shutting down, waiting for /slow
        try keptAlive.send("GET /sync/during HTTP/1.1\r\nHost: x\r\n\r\n")
        let during = try keptAlive.readResponse()
        XCTAssertEqual(during.status, 200)
        XCTAssertTrue(during.text.hasPrefix("sync id=during "), during.text)
        XCTAssertEqual(during.headers["Connection"]?.lowercased(), "close")
        XCTAssertEqual(shutdownDone.wait(timeout: .now() + 5), .success)
        XCTAssertEqual(slow.response()?.text, "slow done")
    }

    func testClientGoneWhileHandlerRunsIsHarmless() throws {
        let server = try startServer()
        for _ in 0..<5 {
            let client = try RawClient(port: server.port)
            try client.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            client.close()  // the handler is still running and its connection suspended
        }
        usleep(700_000)  // handlers finish, resume connections whose peer is gone
        let next = try RawClient.request(port: server.port, "GET", "/hello")
        XCTAssertEqual(next.status, 200)
        let started = Date()
        Self.blockingShutdown(server)  // nothing pending any more: prompt
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.0)
    }

    func testShutdownClosesIdleAndHalfSentConnectionsPromptly() throws {
        let server = try startServer()
        let idle = try RawClient(port: server.port, timeoutSeconds: 3)
        defer { idle.close() }
        try idle.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try idle.readResponse().status, 200)  // now idle, kept alive
        let halfSent = try RawClient(port: server.port, timeoutSeconds: 3)
        defer { halfSent.close() }
        try halfSent.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234")
        usleep(50_000)
        let started = Date()
        Self.blockingShutdown(server)
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.0)
        XCTAssertTrue(idle.isClosedByPeer())
        XCTAssertTrue(halfSent.isClosedByPeer())
    }

    func testStartFailsClearlyWhenPortIsTaken() throws {
        let first = try startServer()
        var configuration = HTTPServerConfiguration()
        configuration.port = first.port
        let second = HTTPServer(configuration: configuration) { _ in HTTPResponse(status: 200) }
        XCTAssertThrowsError(try second.start()) { error in
            XCTAssertTrue("\(error)".contains("cannot listen on 127.0.0.1:\(first.port)"), "\(error)")
        }
        var badHost = HTTPServerConfiguration()
        badHost.host = "localhost"
        XCTAssertThrowsError(try HTTPServer(configuration: badHost) { _ in HTTPResponse(status: 200) }.start())
    }
}

/// One request sent from its own thread (the raw client blocks).
final class BackgroundRequest {
    private let result = LockedBox<Result<RawResponse, Error>?>(nil)
    private let done = DispatchSemaphore(value: 0)

    init(port: Int, _ method: String, _ target: String) {
        Thread.detachNewThread { [result, done] in
            result.set(Result { try RawClient.request(port: port, method, target) })
            done.signal()
        }
    }

    /// Waits up to 5 s for the response; nil (and a test failure) if there is none.
    func response(file: StaticString = #filePath, line: UInt = #line) -> RawResponse? {
        guard done.wait(timeout: .now() + 5) == .success else {
            XCTFail("no response within 5 s", file: file, line: line)
            return nil
        }
        switch result.get() {
        case .success(let response):
            return response
        case .failure(let error):
            XCTFail("request failed: \(error)", file: file, line: line)
        case nil:
            XCTFail("no result", file: file, line: line)
        }
        return nil
    }
}

final class LockedBox<Value>: @unchecked Sendable {  // every access goes through `lock`
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func get() -> Value { lock.withLock { value } }
    func set(_ newValue: Value) { lock.withLock { value = newValue } }
}
