import BrokerCore
import JSON
import MicroHTTP

/// Tenants: create (token shown once), change the quota, rotate the token.
enum TenantAdmin {
    static let quotaFields = [
        ("gpus", "GPUs"), ("instances", "Instances"), ("cpu", "CPU"), ("memoryGiB", "Memory GiB"),
        ("spendPerMonth", "Spend / month"), ("gpuHoursPerMonth", "GPU-hours / month"),
    ]

    static func register(_ console: Console, _ router: inout Router) {
        console.page(&router, "/console/admin/tenants") { context in
            let tenants = try await context.api.all("/v1/admin/tenants", "tenants")
            let rows: [HTML] = tenants.map { row(context, $0) }
            return Page(title: "Tenants", section: "tenants", body: """
                <h1>Tenants</h1>
                <p>An empty quota field means unlimited. Budgets count a calendar month (UTC): what was spent in it plus what live leases commit. A new or rotated token is shown once.</p>
                \(Layout.table(["Tenant", "Created", "Quota", ""], rows, empty: "No tenant yet."))
                <section class="panel" aria-labelledby="create-title"><h2 id="create-title">Create a tenant</h2>
                <form method="post" action="/console/admin/tenants" class="grid-form">\(Layout.csrfField(context))
                <label>Name <input name="name" required></label>
                \(quotaInputs(nil))
                <button type="submit">Create</button>
                </form></section>
                """)
        }
        console.action(&router, "/console/admin/tenants") { context in
            let limits = quota(context).objectValue?.filter { $0.value != .null } ?? [:]
            let body: JSONValue = ["name": context.field("name").map(JSONValue.string) ?? .null, "quota": .object(limits)]
            let created = try Console.change(await context.api.call("POST", "/v1/admin/tenants", body: body))
            showToken(console, context, created, "Tenant \(created["name"]?.stringValue ?? "") created. Its token, shown once:")
            return Redirect(location: "/console/admin/tenants")
        }
        console.action(&router, "/console/admin/tenants/{id}/quota") { context in
            let path = "/v1/admin/tenants/\(HTML.urlComponent(context.parameter("id")))"
            _ = try Console.change(await context.api.call("PATCH", path, body: ["quota": quota(context)]))
            console.sessions.addFlash(context.session.id, Flash(kind: .info, text: "Quota saved."))
            return Redirect(location: "/console/admin/tenants")
        }
        console.action(&router, "/console/admin/tenants/{id}/token") { context in
            let path = "/v1/admin/tenants/\(HTML.urlComponent(context.parameter("id")))/tokens"
            let rotated = try Console.change(await context.api.call("POST", path))
            showToken(console, context, rotated, "New token of \(rotated["name"]?.stringValue ?? ""), shown once (the old one no longer works):")
            return Redirect(location: "/console/admin/tenants")
        }
    }

    static func showToken(_ console: Console, _ context: ConsoleRequest, _ answer: JSONValue, _ text: String) {
        console.sessions.addFlash(
            context.session.id, Flash(kind: .secret, text: text, value: answer["token"]?.stringValue ?? ""))
    }

    /// The form's quota; an empty field is null, which is unlimited (and, in a PATCH, removes the limit).
    static func quota(_ context: ConsoleRequest) -> JSONValue {
        var quota: [String: JSONValue] = [:]
        for (name, _) in quotaFields {
            quota[name] = context.field(name).map(AllocationForm.number) ?? .null
        }
        return .object(quota)
    }

    static func quotaInputs(_ quota: JSONValue?) -> HTML {
        let inputs: [HTML] = quotaFields.map { name, title in
            let value = quota?[name]?.numberValue.map(formatNumber) ?? ""
            return "<label>\(title) <input name=\"\(name)\" type=\"number\" min=\"0\" step=\"any\" class=\"short\" value=\"\(value)\"></label>"
        }
        return "\(inputs)"
    }

    static func row(_ context: ConsoleRequest, _ tenant: JSONValue) -> HTML {
        let id = tenant["id"]?.stringValue ?? ""
        let base = "/console/admin/tenants/\(HTML.urlComponent(id))"
        return """
            <tr><th scope="row">\(tenant["name"]?.stringValue ?? "")<div class="id">\(id)</div></th>\
            <td>\(formatTime(tenant["createdAt"]?.stringValue))</td>\
            <td><form method="post" action="\(base)/quota" class="inline quota">\(Layout.csrfField(context))\
            \(quotaInputs(tenant["quota"]))<button type="submit">Save quota</button></form></td>\
            <td>\(Layout.button(context, "\(base)/token", "Rotate token",
                confirm: "Issue a new token for this tenant? The current one stops working at once."))</td></tr>
            """
    }
}
