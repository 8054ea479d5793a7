import BrokerCore
import JSON
import MicroHTTP

/// Regions (register, cordon, set primary), pools (report capacity and price) and
/// tenants (create, quota, rotate token): admin token only, enforced by the API.
enum AdminPages {
    static func register(_ console: Console, _ router: inout Router) {
        console.page(&router, "/console/admin/regions") { context in
            let regions = try await context.api.all("/v1/regions", "regions")
            let rows: [HTML] = regions.map { region in
                let id = region["id"]?.stringValue ?? ""
                let base = "/console/admin/regions/\(HTML.urlComponent(id))"
                let cordoned = region["state"]?.stringValue == "cordoned"
                let primary = region["primary"]?.boolValue == true
                let switches = (region["vSwitchIds"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ")
                return """
                    <tr><th scope="row">\(id)</th><td>\(region["kind"]?.stringValue ?? "")</td>\
                    <td>\(Layout.badge(region["state"]?.stringValue ?? ""))\(primary ? Layout.badge("primary", tone: .good) : .empty)</td>\
                    <td>\(region["vpcId"]?.stringValue ?? "")</td><td>\(switches)</td>\
                    <td>\(AllocationPages.labels(region["labels"]))</td>\
                    <td class="buttons">\(Layout.button(context, "\(base)/state", cordoned ? "Uncordon" : "Cordon",
                                          fields: [("state", cordoned ? "active" : "cordoned")]))\
                    \(primary ? .empty : Layout.button(context, "\(base)/primary", "Make primary"))</td></tr>
                    """
            }
            return Page(title: "Regions", section: "regions", body: """
                <h1>Regions</h1>
                <p>A cordoned region keeps what it holds and gets no new placement.</p>
                \(Layout.table(["Region", "Kind", "State", "VPC", "vSwitches", "Labels", ""], rows, empty: "No region yet."))
                <section class="panel" aria-labelledby="register-title"><h2 id="register-title">Register a region</h2>
                <form method="post" action="/console/admin/regions" class="grid-form">\(Layout.csrfField(context))
                <label>Id <input name="id" required placeholder="cn-shanghai"></label>
                <label>Kind <select name="kind"><option>serverless</option><option>on-premises</option></select></label>
                <label>VPC <input name="vpcId" required></label>
                <label>vSwitches <input name="vSwitchIds" required placeholder="vsw-1,vsw-2"></label>
                <label>Security group <input name="securityGroupId" required></label>
                <label>Labels <textarea name="labels" rows="2" placeholder="zone=east"></textarea></label>
                <label class="check"><input type="checkbox" name="primary" value="1"> primary</label>
                <button type="submit">Register</button>
                </form></section>
                """)
        }
        console.action(&router, "/console/admin/regions") { context in
            var body: [String: JSONValue] = [
                "kind": .string(context.field("kind") ?? "serverless"), "primary": .bool(context.form["primary"] != nil),
                "vSwitchIds": .array(list(context.field("vSwitchIds")).map(JSONValue.string)),
                "labels": .object(AllocationForm.labels(context.form["labels"])),
            ]
            for name in ["id", "vpcId", "securityGroupId"] { body[name] = context.field(name).map(JSONValue.string) }
            _ = try Console.change(await context.api.call("POST", "/v1/admin/regions", body: .object(body)))
            console.sessions.addFlash(context.session.id, Flash(kind: .info, text: "Region \(context.field("id") ?? "") registered."))
            return Redirect(location: "/console/admin/regions")
        }
        for (change, field) in [("state", "state"), ("primary", "primary")] {
            console.action(&router, "/console/admin/regions/{id}/\(change)") { context in
                let path = "/v1/regions/\(HTML.urlComponent(context.parameter("id")))"
                var region = (try await context.api.get(path).objectValue ?? [:]).filter { !$0.value.isNull }
                region[field] = field == "primary" ? .bool(true) : .string(context.field("state") ?? "active")
                _ = try Console.change(await context.api.call(
                    "PUT", "/v1/admin/regions/\(HTML.urlComponent(context.parameter("id")))", body: .object(region)))
                return Redirect(location: "/console/admin/regions")
            }
        }
        PoolAdmin.register(console, &router)
        TenantAdmin.register(console, &router)
    }

    /// "a, b,c" as ["a", "b", "c"].
    static func list(_ text: String?) -> [String] {
        (text ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}
