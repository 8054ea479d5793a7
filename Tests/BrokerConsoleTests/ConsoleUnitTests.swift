@testable import BrokerConsole
import Foundation
import MicroHTTP
import XCTest

/// The console's building blocks that need no browser: escaping, cookies, forms,
/// cross-site refusal, sessions. scripts/console-test drives the pages in Chromium.
final class ConsoleUnitTests: XCTestCase {
    func testInterpolatedStringsAreEscapedAndMarkupIsNot() {
        let label = "<script>alert('x')</script>\"&"
        let inner: HTML = "<b>\(label)</b>"
        let page: HTML = "<td title=\"\(label)\">\(inner)</td>"
        XCTAssertEqual(
            page.text,
            "<td title=\"&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;\">"
                + "<b>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;</b></td>")
        XCTAssertEqual(HTML.urlComponent("a/b c?d"), "a%2Fb%20c%3Fd")
    }

    func testFormsCookiesAndCrossSiteRequests() {
        var request = HTTPRequest(
            method: "POST", path: "/console/allocations",
            headers: HTTPHeaders([("Content-Type", "application/x-www-form-urlencoded"), ("Host", "broker:8080"),
                                  ("Cookie", "other=1; gpb_session=abc123; x=")]),
            body: Array("labels=app%3Dx%0Ateam%3Dy&csrf=t&gpuSeries=T4%2CA10&empty=&flag".utf8))
        XCTAssertEqual(
            Console.form(request), ["labels": "app=x\nteam=y", "csrf": "t", "gpuSeries": "T4,A10", "empty": "", "flag": ""])
        XCTAssertEqual(Console.cookie(request, "gpb_session"), "abc123")
        XCTAssertNil(Console.cookie(request, "x"))
        XCTAssertNil(Console.refuseCrossSite(request), "no Origin: a same-site form post or a non-browser client")
        request.headers.add("Origin", "http://broker:8080")
        request.headers.add("Sec-Fetch-Site", "same-origin")
        XCTAssertNil(Console.refuseCrossSite(request))
        request.headers.replaceOrAdd("Origin", "http://evil.example")
        XCTAssertEqual(Console.refuseCrossSite(request)?.status, 403)
        request.headers.replaceOrAdd("Origin", "http://broker:8080")
        request.headers.replaceOrAdd("Sec-Fetch-Site", "cross-site")
        XCTAssertEqual(Console.refuseCrossSite(request)?.status, 403)
        request.headers.replaceOrAdd("Content-Type", "application/json")
        XCTAssertNil(Console.form(request))
    }

    func testSessionCookieIsHttpOnlyStrictAndSecureUnderTLS() {
        var request = HTTPRequest(method: "POST", path: "/console/signin")
        XCTAssertEqual(
            Console.cookieHeader("gpb_session", "id", request, maxAge: nil), "gpb_session=id; Path=/console; HttpOnly; SameSite=Strict")
        var direct = request
        direct.isTLS = true
        XCTAssertEqual(
            Console.cookieHeader("gpb_session", "id", direct, maxAge: nil),
            "gpb_session=id; Path=/console; HttpOnly; SameSite=Strict; Secure", "HTTPS served by the broker itself (issue 31, N8)")
        request.headers.add("X-Forwarded-Proto", "https")
        XCTAssertEqual(
            Console.cookieHeader("gpb_session", "", request, maxAge: 0),
            "gpb_session=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0",
            "the header alone is anyone's to send: the server decides whether to trust it (isTLS)")
    }

    func testSessionsEndWhenIdleOrSignedOutAndNeverHoldMoreThanCapacity() throws {
        let store = SessionStore(idleLimit: 60, capacity: 2)
        let start = Date()
        let first = try XCTUnwrap(store.create(token: "t1", role: .tenant, now: start))
        XCTAssertEqual(first.id.count, 64)
        XCTAssertNotEqual(first.id, first.csrf)
        XCTAssertEqual(store.session(first.id, now: start.addingTimeInterval(59))?.token, "t1")
        XCTAssertNil(store.session(first.id, now: start.addingTimeInterval(59 + 61)), "idle for over a minute")
        let a = try XCTUnwrap(store.create(token: "a", role: .admin, now: start))
        let b = try XCTUnwrap(store.create(token: "b", role: .tenant, now: start.addingTimeInterval(1)))
        XCTAssertNil(store.create(token: "c", role: .tenant, now: start.addingTimeInterval(2)), "full: refused, nobody signed out")
        XCTAssertNotNil(store.session(a.id, now: start.addingTimeInterval(3)))
        store.addFlash(b.id, Flash(kind: .secret, text: "token", value: "gpb_x"))
        XCTAssertEqual(store.takeFlashes(b.id).map(\.value), ["gpb_x"])
        XCTAssertEqual(store.takeFlashes(b.id), [], "shown once")
        store.end(b.id)
        XCTAssertNil(store.session(b.id, now: start.addingTimeInterval(3)))
    }

    /// Issue 31, N6: any tenant could sign every console user out, the admin included,
    /// by signing in 10,050 times (sessions were evicted globally, least recently seen first).
    func testASignInFloodEndsOnlyTheFloodersOwnSessions() throws {
        let store = SessionStore(idleLimit: 3600, capacity: 10_000, perToken: 20)
        let start = Date()
        let admin = try XCTUnwrap(store.create(token: "admin", role: .admin, now: start))
        let user = try XCTUnwrap(store.create(token: "user", role: .tenant, now: start))
        var flood: [Session] = []
        for i in 1...10_050 {
            flood.append(try XCTUnwrap(store.create(token: "attacker", role: .tenant, now: start.addingTimeInterval(Double(i) / 100))))
        }
        let later = start.addingTimeInterval(200)
        XCTAssertNotNil(store.session(admin.id, now: later), "the admin is still signed in")
        XCTAssertNotNil(store.session(user.id, now: later), "another tenant is still signed in")
        XCTAssertEqual(flood.filter { store.session($0.id, now: later) != nil }.count, 20, "the flooder keeps its newest 20")
        XCTAssertNotNil(store.session(flood.last!.id, now: later))
    }
}
