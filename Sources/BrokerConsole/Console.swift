import BrokerCore
import JSON
import Foundation
import JSON
import MicroHTTP

/// The web console: server-rendered pages under `/console/` that drive the broker through
/// its own API, called in-process with the signed-in token (see `APIClient`).
public enum BrokerConsole {
    /// Adds `GET /` (a redirect) and every `/console/…` route to `router`. Their pages
    /// call `api`, the broker's API router, in-process. HTML routes are not part of the
    /// OpenAPI document: the API router the document describes does not contain them.
    /// `sessionsPerToken`: console sessions one token may hold (`ResourceLimits`' sessions-per-tenant).
    public static func register(
        on router: inout Router, api: Router, sessionIdleSeconds: Double = 8 * 3600,
        sessionsPerToken: Int = ResourceLimits.Name.sessionsPerTenant.defaultValue
    ) {
        Console(api: api, sessions: SessionStore(idleLimit: sessionIdleSeconds, perToken: sessionsPerToken)).register(&router)
    }
}

/// One request to a page or form of a signed-in session.
struct ConsoleRequest: Sendable {
    var request: HTTPRequest
    var session: Session
    var api: APIClient
    /// The decoded form of a POST (empty for a GET).
    var form: [String: String]
    var flashes: [Flash]

    var isAdmin: Bool { session.role == .admin }
    func parameter(_ name: String) -> String { request.pathParameters[name] ?? "" }
    /// A form field without surrounding whitespace; nil when absent or blank.
    func field(_ name: String) -> String? {
        let value = form[name]?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        return value.isEmpty ? nil : value
    }
}

/// A rendered page: its `<title>`, the navigation entry it belongs to, the body.
struct Page: Sendable {
    var title: String
    var section: String
    var body: HTML
    var status = 200
}

/// Where a form goes after its change: the page to show next (with flashes added).
struct Redirect: Sendable {
    var location: String
}

final class Console: Sendable {
    let api: Router
    let sessions: SessionStore
    static let sessionCookie = "gpb_session"
    static let signInCookie = "gpb_signin"

    init(api: Router, sessions: SessionStore) {
        self.api = api
        self.sessions = sessions
    }

    func register(_ router: inout Router) {
        router.addSynchronous("GET", "/") { _ in Self.redirect("/console/") }
        router.addSynchronous("GET", "/console") { _ in Self.redirect("/console/") }
        for (name, type) in [("console.css", "text/css; charset=utf-8"), ("console.js", "text/javascript; charset=utf-8")] {
            let body = name == "console.css" ? PackageResources.console_css : PackageResources.console_js
            router.addSynchronous("GET", "/console/assets/\(name)") { _ in
                HTTPResponse(status: 200, headers: HTTPHeaders([
                    ("Content-Type", type), ("Cache-Control", "public, max-age=300"), ("X-Content-Type-Options", "nosniff"),
                ]), body: body)
            }
        }
        router.add("GET", "/console/signin") { [self] request in signInPage(request, problem: nil) }
        router.add("POST", "/console/signin") { [self] request in await signIn(request) }
        action(&router, "/console/signout") { [self] request in
            sessions.end(request.session.id)
            return Redirect(location: "/console/signin")
        }
        OverviewPage.register(self, &router)
        AllocationPages.register(self, &router)
        ChartsPage.register(self, &router)
        AdminPages.register(self, &router)
    }

    // MARK: routes with a session

    /// A page for a signed-in session; without one, the sign-in page.
    func page(_ router: inout Router, _ pattern: String, _ handler: @escaping @Sendable (ConsoleRequest) async throws -> Page) {
        router.add("GET", pattern) { [self] request in
            guard let session = session(of: request) else { return Self.redirect("/console/signin") }
            let context = ConsoleRequest(
                request: request, session: session, api: client(session, request), form: [:],
                flashes: sessions.takeFlashes(session.id))
            let page: Page
            do {
                page = try await handler(context)
            } catch let failure as APIClient.Failure where failure.answer.status == 401 {
                sessions.end(session.id)  // the token was rotated or removed since sign-in
                return Self.redirect("/console/signin")
            } catch let failure as APIClient.Failure {
                page = Page(
                    title: "Error", section: "",
                    body: "<h1>\(Self.reason(failure.answer.status))</h1><p class=\"problem\">\(failure.answer.problem)</p>",
                    status: failure.answer.status >= 500 ? 502 : failure.answer.status)
            } catch {
                page = Page(title: "Error", section: "", body: "<h1>Something went wrong</h1>", status: 500)
            }
            return Self.html(Layout.render(page, context), status: page.status)
        }
    }

    /// A form that changes something: same-origin, a session, its CSRF token; then the
    /// handler, whose API problems become a flash on the page it redirects to.
    func action(_ router: inout Router, _ pattern: String, _ handler: @escaping @Sendable (ConsoleRequest) async throws -> Redirect) {
        router.add("POST", pattern) { [self] request in
            if let refused = Self.refuseCrossSite(request) { return refused }
            guard let session = session(of: request) else { return Self.redirect("/console/signin") }
            guard let form = Self.form(request) else {
                return Self.html(Layout.bare("Unsupported form", "<h1>Send the form as a browser does</h1>"), status: 415)
            }
            guard let csrf = form["csrf"], ConstantTime.equal(csrf, session.csrf) else {
                return Self.html(
                    Layout.bare("Form expired", "<h1>This form has expired</h1><p>Go back, reload the page and send it again.</p>"),
                    status: 403)
            }
            let context = ConsoleRequest(
                request: request, session: session, api: client(session, request), form: form, flashes: [])
            do {
                return Self.redirect(try await handler(context).location)
            } catch let failure as APIClient.Failure {
                sessions.addFlash(session.id, Flash(kind: .error, text: failure.answer.problem))
                return Self.redirect(Self.back(request))
            } catch {
                sessions.addFlash(session.id, Flash(kind: .error, text: "that did not work; try again"))
                return Self.redirect(Self.back(request))
            }
        }
    }

    /// Runs an API change; a refusal is thrown as a `Failure` (becomes a flash).
    static func change(_ answer: APIClient.Answer) throws -> JSONValue {
        guard answer.ok else { throw APIClient.Failure(answer: answer) }
        return answer.json
    }

    private func client(_ session: Session, _ request: HTTPRequest) -> APIClient {
        APIClient(
            api: api, token: session.token, requestId: request.headers["X-Request-Id"], remoteAddress: request.remoteAddress)
    }

    private func session(of request: HTTPRequest) -> Session? {
        Self.cookie(request, Self.sessionCookie).flatMap { sessions.session($0) }
    }

    // MARK: sign-in

    private func signInPage(_ request: HTTPRequest, problem: String?, status: Int = 200) -> HTTPResponse {
        let nonce = SessionStore.randomToken()
        var response = Self.html(Layout.signIn(csrf: nonce, problem: problem), status: status)
        response.headers.add("Set-Cookie", Self.cookieHeader(Self.signInCookie, nonce, request, maxAge: 3600))
        return response
    }

    private func signIn(_ request: HTTPRequest) async -> HTTPResponse {
        if let refused = Self.refuseCrossSite(request) { return refused }
        // Double submit: the form's token must equal the cookie set with the form, so
        // another site cannot sign a browser in to an account of its choosing.
        guard let form = Self.form(request), let csrf = form["csrf"], let nonce = Self.cookie(request, Self.signInCookie),
            ConstantTime.equal(csrf, nonce)
        else {
            return signInPage(request, problem: "The sign-in form expired; paste the token again.", status: 403)
        }
        let token = (form["token"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { return signInPage(request, problem: "Paste a tenant or admin token.", status: 422) }
        let client = APIClient(api: api, token: token, requestId: nil, remoteAddress: request.remoteAddress)
        let probe = await client.call("GET", "/v1/allocations", query: ["limit": "1"])
        let role: Role
        switch probe.status {
        case 200: role = .tenant
        case 403: role = .admin  // allocations belong to tenants: only the admin token is refused
        case 401: return signInPage(request, problem: "That token is not valid.", status: 401)
        default: return signInPage(request, problem: probe.problem, status: probe.status >= 500 ? 502 : probe.status)
        }
        if let old = Self.cookie(request, Self.sessionCookie) { sessions.end(old) }
        guard let session = sessions.create(token: token, role: role) else {
            return signInPage(request, problem: "The console has as many sessions as it can hold; try again later.", status: 503)
        }
        var response = Self.redirect("/console/")
        response.headers.add("Set-Cookie", Self.cookieHeader(Self.sessionCookie, session.id, request, maxAge: nil))
        response.headers.add("Set-Cookie", Self.cookieHeader(Self.signInCookie, "", request, maxAge: 0))
        return response
    }

    // MARK: HTTP helpers

    static func redirect(_ location: String) -> HTTPResponse {
        HTTPResponse(status: 303, headers: HTTPHeaders([("Location", location), ("Cache-Control", "no-store")]))
    }

    /// Pages never go to other origins, frames or inline scripts; nothing is cached.
    static func html(_ markup: HTML, status: Int) -> HTTPResponse {
        HTTPResponse(
            status: status,
            headers: HTTPHeaders([
                ("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"),
                ("Content-Security-Policy",
                 "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; "
                    + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
                ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "same-origin"), ("X-Frame-Options", "DENY"),
            ]),
            body: Array(markup.text.utf8))
    }

    static func cookieHeader(_ name: String, _ value: String, _ request: HTTPRequest, maxAge: Int?) -> String {
        var header = "\(name)=\(value); Path=/console; HttpOnly; SameSite=Strict"
        if let maxAge { header += "; Max-Age=\(maxAge)" }
        // Over TLS to this server, or to a proxy trusted to say so (`--trust-forwarded-proto`).
        if request.isTLS { header += "; Secure" }
        return header
    }

    static func cookie(_ request: HTTPRequest, _ name: String) -> String? {
        for header in request.headers.values(for: "Cookie") {
            for pair in header.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == name {
                    let value = parts[1].trimmingCharacters(in: .whitespaces)
                    return value.isEmpty ? nil : value
                }
            }
        }
        return nil
    }

    /// A POST another site made the browser send: the browser says where it came from.
    static func refuseCrossSite(_ request: HTTPRequest) -> HTTPResponse? {
        let site = request.headers["Sec-Fetch-Site"]?.lowercased()
        var crossSite = site != nil && site != "same-origin" && site != "none"
        if let origin = request.headers["Origin"], let host = request.headers["Host"] {
            crossSite = crossSite || (origin != "http://\(host)" && origin != "https://\(host)")
        }
        guard crossSite else { return nil }
        return html(Layout.bare("Refused", "<h1>Refused</h1><p>Forms are accepted from this console only.</p>"), status: 403)
    }

    /// An `application/x-www-form-urlencoded` body; nil for any other content type.
    static func form(_ request: HTTPRequest) -> [String: String]? {
        guard let type = request.headers["Content-Type"]?.lowercased(),
            type.hasPrefix("application/x-www-form-urlencoded")
        else { return nil }
        var fields: [String: String] = [:]
        for pair in String(decoding: request.body, as: UTF8.self).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String {
                part.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            fields[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }

    /// The console page that sent a form (its `Referer`), else the overview.
    static func back(_ request: HTTPRequest) -> String {
        guard let referer = request.headers["Referer"], let url = URL(string: referer),
            url.path.hasPrefix("/console/")
        else { return "/console/" }
        return url.path + (url.query.map { "?" + $0 } ?? "")
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 401: "Signed out"
        case 403: "Not allowed"
        case 404: "Not found"
        case 429: "Too many requests"
        case 500...: "The broker could not answer"
        default: "Refused"
        }
    }
}
