import Foundation
import MicroHTTP
import TestHarness
import Synchronization
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Issue 17: what an attacker tried on the server itself (paths, framing, sizes,
/// slow clients). Synchronous on purpose, as `MicroHTTPTests`.
final class HardeningTests: XCTestCase {
    func startServer(_ configure: (inout HTTPServerConfiguration) -> Void = { _ in }) throws -> HTTPServer {
        var configuration = HTTPServerConfiguration()
        configuration.port = 0
        configure(&configuration)
        let server = HTTPServer(configuration: configuration, router: MicroHTTPTests.makeRouter())
        try server.start()
        addTeardownBlock { MicroHTTPTests.blockingShutdown(server) }
        return server
    }

    /// Sends `raw` on a fresh connection; the first response, and whether the server closed afterwards.
    func exchange(_ port: Int, _ raw: String) throws -> (response: RawResponse, closed: Bool) {
        let client = try RawClient(port: port, timeoutSeconds: 5)
        defer { client.close() }
        try client.send(raw)
        let response = try client.readResponse()
        return (response, client.isClosedByPeer())
    }

    // MARK: (2) the path is routed raw, then decoded per segment

    func testEncodedNulAndSlashInThePathAreRefusedNotRouted() throws {
        let server = try startServer()
        for target in [
            "/v1/regions/r3%00/pools/p", "/v1/regions/r3/pools/p%00x", "/v1/allocations/a%2Fb",
            "/v1/allocations/a%2fb", "/query?q=a%00",
        ] {
            let (response, closed) = try exchange(server.port, "GET \(target) HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertEqual(response.status, 400, "\(target): \(response.text)")
            XCTAssertTrue(closed, target)
        }
        // Other escapes are decoded inside their segment.
        var response = try RawClient.request(port: server.port, "GET", "/v1/regions/a%20b/pools/p%2Dq")
        XCTAssertEqual(response.text, "region=a b pool=p-q")
        response = try RawClient.request(port: server.port, "GET", "/v1/allocations/from%2Dmanifest")
        XCTAssertEqual(response.status, 405, "an escaped literal is the literal (POST only)")
        response = try RawClient.request(port: server.port, "GET", "/query?a%3Db=c%26d&e=%2B+f")
        XCTAssertEqual(response.text, "a=b=c&d&e=+ f")
    }

    // MARK: issue 31, N8: TLS ended by a proxy in front

    /// `X-Forwarded-Proto: https` counts as TLS (HSTS, `isTLS` for Secure cookies) only
    /// when the server is told to trust the proxy that sets it; otherwise any client could
    /// send it.
    func testForwardedProtoIsTrustedOnlyWithTheFlag() throws {
        let forwarded = ["X-Forwarded-Proto: https"]
        let untrusting = try startServer()
        for target in ["/tls", "/sync/1"] {
            let response = try RawClient.request(port: untrusting.port, "GET", target, headers: forwarded)
            XCTAssertNil(response.headers["Strict-Transport-Security"], target)
        }
        XCTAssertEqual(try RawClient.request(port: untrusting.port, "GET", "/tls", headers: forwarded).text, "tls=false")

        let trusting = try startServer { $0.trustForwardedProto = true }
        for target in ["/tls", "/sync/1"] {
            let response = try RawClient.request(port: trusting.port, "GET", target, headers: forwarded)
            XCTAssertEqual(response.headers["Strict-Transport-Security"], "max-age=31536000", target)
        }
        XCTAssertEqual(try RawClient.request(port: trusting.port, "GET", "/tls", headers: forwarded).text, "tls=true")
        XCTAssertEqual(
            try RawClient.request(port: trusting.port, "GET", "/tls", headers: ["Forwarded: for=1.2.3.4;proto=https"]).text, "tls=true")
        let plain = try RawClient.request(port: trusting.port, "GET", "/tls", headers: ["X-Forwarded-Proto: http"])
        XCTAssertEqual(plain.text, "tls=false")
        XCTAssertNil(plain.headers["Strict-Transport-Security"], "plain HTTP through the proxy: no HSTS")
    }

    // MARK: (6) request-smuggling shapes

    func testAmbiguousFramingIsRefusedAndTheConnectionClosed() throws {
        let server = try startServer()
        let hidden = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
        let cases = [
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef",
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden,
            "GET /hello HTTP/1.1\r\n\r\n",
            // Issue 31, N10: a space before the colon made another header of it; the body became a second request.
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length : \(hidden.utf8.count)\r\n\r\n" + hidden,
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length\t: \(hidden.utf8.count)\r\n\r\n" + hidden,
        ]
        for raw in cases {
            let client = try RawClient(port: server.port, timeoutSeconds: 5)
            defer { client.close() }
            try client.send(raw)
            let response = try client.readResponse()
            XCTAssertEqual(response.status, 400, "\(raw.debugDescription): \(response.text)")
            XCTAssertTrue(client.isClosedByPeer(), "closed after \(raw.debugDescription), the hidden request unanswered")
        }
        // Equal duplicates and HTTP/1.0 without Host stay fine.
        let same = try exchange(
            server.port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok")
        XCTAssertEqual(same.response.text, "ok")
        XCTAssertEqual(try exchange(server.port, "GET /hello HTTP/1.0\r\n\r\n").response.status, 200)
    }

    // MARK: (7) sizes: every refusal goes through the error responder

    func testLongTargetsManyParametersAndHeadersGetTheServersOwnAnswers() throws {
        let server = try startServer()
        let longPath = "/v1/allocations/" + String(repeating: "a", count: 20_000)
        var response = try RawClient.request(port: server.port, "GET", longPath)
        XCTAssertEqual(response.status, 414)
        XCTAssertEqual(response.text, "URI Too Long\n")
        let parameters = (0..<462).map { "p\($0)=\($0)" }.joined(separator: "&")
        response = try RawClient.request(port: server.port, "GET", "/query?" + parameters)
        XCTAssertEqual(response.status, 414)
        XCTAssertEqual(response.text, "URI Too Long\n")
        // The query counts in the header budget (16 KiB): 10 KB of query plus 8 KB of header.
        response = try RawClient.request(
            port: server.port, "GET", "/query?q=" + String(repeating: "b", count: 10_000),
            headers: ["X-Padding: " + String(repeating: "c", count: 8_000)])
        XCTAssertEqual(response.status, 431)
        XCTAssertEqual(response.text, "Request Header Fields Too Large\n")
        // Many small headers: the server's own 431, not libmicrohttpd's HTML (up to
        // what fits in connectionMemoryLimit, which libmicrohttpd answers itself).
        response = try RawClient.request(
            port: server.port, "GET", "/hello", headers: (0..<120).map { "X-H\($0): \(String(repeating: "v", count: 140))" })
        XCTAssertEqual(response.status, 431)
        XCTAssertEqual(response.text, "Request Header Fields Too Large\n")
        response = try RawClient.request(port: server.port, "GET", "/query?" + (0..<100).map { "p\($0)=1" }.joined(separator: "&"))
        XCTAssertEqual(response.status, 200, "100 parameters are fine")
    }

    // MARK: (8) repeated query parameters

    func testRepeatedQueryParametersKeepEveryValue() throws {
        let received = ReceivedRequests()
        var configuration = HTTPServerConfiguration()
        configuration.port = 0
        let server = HTTPServer(configuration: configuration) { request in
            received.add(request)
            return HTTPResponse(status: 200)
        }
        try server.start()
        defer { MicroHTTPTests.blockingShutdown(server) }
        _ = try RawClient.request(port: server.port, "GET", "/q?a=1&b=2&a=3&a=4")
        let request = try XCTUnwrap(received.first)
        XCTAssertEqual(request.query, ["a": "4", "b": "2"])
        XCTAssertEqual(request.repeatedQuery, ["a": ["1", "3", "4"]])
    }

    // MARK: (4) connection caps and the whole-request deadline

    func testPerIPLimitClosesConnectionsAboveIt() throws {
        let server = try startServer { $0.perIPConnectionLimit = 3 }
        let held = try (0..<3).map { _ in try RawClient(port: server.port) }
        defer { held.forEach { $0.close() } }
        let extra = try RawClient(port: server.port, timeoutSeconds: 2)
        defer { extra.close() }
        try? extra.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertThrowsError(try extra.readResponse(), "the fourth connection from one address is closed")
        held[0].close()
        usleep(200_000)
        XCTAssertEqual(try RawClient.request(port: server.port, "GET", "/hello").status, 200)
    }

    /// 1,000 connections trickle a request a byte at a time; a normal client is
    /// still served while they are open, and the server closes them once the
    /// request deadline (2 s here) has passed, however steadily they send.
    func testTricklingConnectionsAreClosedAtTheDeadlineWhileNormalClientsAreServed() throws {
        let server = try startServer {
            $0.requestTimeoutSeconds = 2
            $0.connectionLimit = 2_000
        }
        let trickling = 1_000
        var clients: [RawClient] = []
        defer { clients.forEach { $0.close() } }
        for _ in 0..<trickling { clients.append(try RawClient(port: server.port, timeoutSeconds: 1)) }
        let request = Array("GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8) + Array(repeating: UInt8(ascii: "a"), count: 64)
        let started = Date()
        var latencies: [Double] = []
        var sent = 0
        // A byte per connection every 250 ms for 4 s: never idle, never finished.
        while Date().timeIntervalSince(started) < 4 {
            for client in clients { _ = request[sent % request.count..<sent % request.count + 1].withUnsafeBytes {
                Glibc.send(client.fd, $0.baseAddress, 1, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            } }
            sent += 1
            if sent % 2 == 0 {
                let before = Date()
                let response = try RawClient.request(port: server.port, "GET", "/hello")
                XCTAssertEqual(response.status, 200)
                latencies.append(Date().timeIntervalSince(before))
            }
            usleep(250_000)
        }
        var closed = 0
        for client in clients {
            var byte: UInt8 = 0
            if recv(client.fd, &byte, 1, Int32(MSG_DONTWAIT)) == 0 { closed += 1 }
        }
        let worst = latencies.max() ?? 0
        print("trickling: \(closed) of \(trickling) closed by the server after 4 s (deadline 2 s); "
            + "\(latencies.count) normal requests meanwhile, slowest \(Int(worst * 1000)) ms")
        XCTAssertEqual(closed, trickling, "every trickling connection was closed at the deadline")
        XCTAssertLessThan(worst, 1, "normal requests were served while 1,000 connections trickled")
    }
}

final class ReceivedRequests: Sendable {
    private let requests = Mutex<[HTTPRequest]>([])
    func add(_ request: HTTPRequest) { requests.withLock { $0.append(request) } }
    var first: HTTPRequest? { requests.withLock { $0.first } }
}
