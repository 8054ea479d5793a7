import BrokerCore

/// The page around every console view: head, navigation, flashes, sign-out.
enum Layout {
    static let sections: [(id: String, title: String, path: String, adminOnly: Bool?)] = [
        ("overview", "Overview", "/console/", nil),
        ("allocations", "Allocations", "/console/allocations", nil),
        ("pending", "Pending", "/console/pending", nil),
        ("charts", "Charts", "/console/charts", nil),
        ("regions", "Regions", "/console/admin/regions", true),
        ("pools", "Pools", "/console/admin/pools", true),
        ("tenants", "Tenants", "/console/admin/tenants", true),
    ]

    static func head(_ title: String) -> HTML {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(title) · gpubroker</title>
        <link rel="stylesheet" href="/console/assets/console.css">
        <script src="/console/assets/console.js" defer></script>
        </head>
        """
    }

    static func render(_ page: Page, _ context: ConsoleRequest) -> HTML {
        let links: [HTML] = sections.filter { $0.adminOnly == nil || $0.adminOnly == context.isAdmin }.map { section in
            let current: HTML = section.id == page.section ? " aria-current=\"page\"" : ""
            return "<li><a href=\"\(section.path)\"\(current)>\(section.title)</a></li>"
        }
        let role = context.isAdmin ? "admin" : "tenant"
        let flashes: [HTML] = context.flashes.map { flash in
            let value: HTML = flash.value.map { "<code class=\"secret\" tabindex=\"0\">\($0)</code>" } ?? .empty
            return "<div class=\"flash \(flash.kind.rawValue)\" role=\"\(flash.kind == .error ? "alert" : "status")\">\(flash.text)\(value)</div>"
        }
        return """
            \(head(page.title))
            <body>
            <a class="skip" href="#main">Skip to content</a>
            <header class="top">
              <a class="brand" href="/console/">gpubroker</a>
              <nav aria-label="Console"><ul>\(links)</ul></nav>
              <form method="post" action="/console/signout" class="signout">
                \(csrfField(context))
                <span class="role">\(role)</span>
                <button type="submit" class="link">Sign out</button>
              </form>
            </header>
            <main id="main" tabindex="-1">
            \(flashes)
            \(page.body)
            </main>
            </body></html>
            """
    }

    /// A page outside a session (refusals).
    static func bare(_ title: String, _ body: HTML) -> HTML {
        """
        \(head(title))
        <body><main id="main" class="narrow">\(body)<p><a href="/console/">Back to the console</a></p></main></body></html>
        """
    }

    static func signIn(csrf: String, problem: String?) -> HTML {
        let message: HTML = problem.map { "<div class=\"flash error\" role=\"alert\">\($0)</div>" } ?? .empty
        return """
            \(head("Sign in"))
            <body>
            <main id="main" class="narrow signin">
            <h1>gpubroker console</h1>
            \(message)
            <form method="post" action="/console/signin">
              <input type="hidden" name="csrf" value="\(csrf)">
              <label for="token">Tenant or admin token</label>
              <input id="token" name="token" type="password" autocomplete="off" required autofocus>
              <p class="hint">The token stays on the server; this browser keeps only a session cookie.</p>
              <button type="submit">Sign in</button>
            </form>
            </main>
            </body></html>
            """
    }

    static func csrfField(_ context: ConsoleRequest) -> HTML {
        "<input type=\"hidden\" name=\"csrf\" value=\"\(context.session.csrf)\">"
    }

    /// A one-button form that changes something (with the session's CSRF token).
    /// `confirm`: a question the browser asks before the form is sent (console.js).
    static func button(_ context: ConsoleRequest, _ action: String, _ label: String, fields: [(String, String)] = [],
                       style: String = "", confirm: String? = nil) -> HTML {
        let hidden: [HTML] = fields.map { "<input type=\"hidden\" name=\"\($0.0)\" value=\"\($0.1)\">" }
        let question: HTML = confirm.map { " data-confirm=\"\($0)\"" } ?? .empty
        return """
            <form method="post" action="\(action)" class="inline"\(question)>\(csrfField(context))\(hidden)\
            <button type="submit" class="\(style)">\(label)</button></form>
            """
    }

    /// A status word as a coloured badge (colour and text both say it). Its colour is its
    /// `StateTone` (the API's state words carry theirs), or `tone` for the console's own words.
    static func badge(_ text: String, _ kind: String? = nil, tone: StateTone? = nil) -> HTML {
        let tone = tone ?? (kind == nil ? StateTone.of(text) : nil)
        return "<span class=\"badge \(kind ?? text)\(tone.map { " " + $0.rawValue } ?? "")\">\(text)</span>"
    }

    static func table(_ headers: [String], _ rows: [HTML], empty: String, caption: String? = nil) -> HTML {
        guard !rows.isEmpty else { return "<p class=\"empty\">\(empty)</p>" }
        let heads: [HTML] = headers.map { "<th scope=\"col\">\($0)</th>" }
        let captionHTML: HTML = caption.map { "<caption>\($0)</caption>" } ?? .empty
        return "<div class=\"scroll\"><table>\(captionHTML)<thead><tr>\(heads)</tr></thead><tbody>\(rows)</tbody></table></div>"
    }
}
