import BrokerCore
import JSON
import Foundation
import JSON
import MicroHTTP

/// A tenant's allocations: the filtered, paged list with the request form, one
/// allocation with its instances, decisions and events, and the pending queue.
enum AllocationPages {
    static let columns = ["Allocation", "Status", "Placed", "Shape", "Regions", "Labels", "Lease until"]
    static let statuses = AllocationStatus.allCases.map(\.rawValue)

    static func register(_ console: Console, _ router: inout Router) {
        console.page(&router, "/console/allocations") { context in
            var query = ["limit": "20"]
            for name in ["status", "region", "cursor"] {
                if let value = context.request.query[name], !value.isEmpty { query[name] = value }
            }
            // The admin reads one tenant's list at a time (the API's admin view of a tenant).
            var listPath = "/v1/allocations"
            var tenants: [JSONValue] = []
            var links = query
            if context.isAdmin {
                tenants = try await context.api.all("/v1/admin/tenants", "tenants")
                let chosen = tenants.first { $0["id"]?.stringValue == context.request.query["tenant"] } ?? tenants.first
                guard let id = chosen?["id"]?.stringValue else {
                    return Page(title: "Allocations", section: "allocations", body: "<h1>Allocations</h1><p class=\"empty\">No tenant yet.</p>")
                }
                listPath = "/v1/admin/tenants/\(HTML.urlComponent(id))/allocations"
                links["tenant"] = id
            }
            let page = try await context.api.get(listPath, query: query)
            let regions = try await regionIds(context)
            let rows = (page["allocations"]?.arrayValue ?? []).map(row)
            var pager: [HTML] = []
            if query["cursor"] != nil { pager.append("<a href=\"\(link(links, cursor: nil))\">First page</a>") }
            if let next = page["nextCursor"]?.stringValue { pager.append("<a href=\"\(link(links, cursor: next))\">Next page</a>") }
            return Page(title: "Allocations", section: "allocations", body: """
                <h1>Allocations</h1>
                \(filters(links, regions: regions, tenants: tenants))
                <div id="live-allocations" data-live>
                \(Layout.table(columns, rows, empty: "No allocation matches."))
                </div>
                <nav class="pager" aria-label="Pages">\(pager)</nav>
                \(context.isAdmin ? .empty : AllocationForm.render(context, regions: regions))
                """)
        }
        console.action(&router, "/console/allocations") { context in
            let answer = await context.api.call("POST", "/v1/allocations", body: AllocationForm.body(context))
            let created = try Console.change(answer)
            let id = created["id"]?.stringValue ?? ""
            let status = created["status"]?.stringValue ?? ""
            console.sessions.addFlash(context.session.id, Flash(kind: .info, text: "Allocation \(id) is \(status)."))
            return Redirect(location: "/console/allocations/\(HTML.urlComponent(id))")
        }
        console.page(&router, "/console/allocations/{id}") { context in
            let id = HTML.urlComponent(context.parameter("id"))
            let allocation = try await context.api.get(apiPath(context, id))
            let events = try await context.api.get(apiPath(context, id) + "/events")["events"]?.arrayValue ?? []
            return Page(title: "Allocation", section: "allocations", body: AllocationDetail.render(context, allocation, events))
        }
        console.action(&router, "/console/allocations/{id}/scale") { context in
            let path = apiPath(context, HTML.urlComponent(context.parameter("id")))
            let replicas = context.field("replicas").map(AllocationForm.number) ?? .null
            _ = try Console.change(await context.api.call("PATCH", path, body: ["replicas": replicas]))
            console.sessions.addFlash(context.session.id, Flash(kind: .info, text: "Scaled."))
            return Redirect(location: "/console/allocations/\(HTML.urlComponent(context.parameter("id")))")
        }
        console.action(&router, "/console/allocations/{id}/renew") { context in
            let id = HTML.urlComponent(context.parameter("id"))
            let body: JSONValue = context.field("leaseSeconds").map { ["leaseSeconds": AllocationForm.number($0)] } ?? [:]
            _ = try Console.change(await context.api.call("POST", apiPath(context, id) + "/renew", body: body))
            console.sessions.addFlash(context.session.id, Flash(kind: .info, text: "Lease renewed."))
            return Redirect(location: "/console/allocations/\(id)")
        }
        console.action(&router, "/console/allocations/{id}/release") { context in
            let id = HTML.urlComponent(context.parameter("id"))
            _ = try Console.change(await context.api.call("DELETE", apiPath(context, id)))
            console.sessions.addFlash(context.session.id, Flash(kind: .info, text: "Released."))
            return Redirect(location: "/console/allocations/\(id)")
        }
        console.page(&router, "/console/pending") { context in
            let waiting = try await allocations(context, status: "pending")
                .flatMap { tenant, list in list.map { (tenant: tenant, allocation: $0) } }
                .sorted { ($0.allocation["createdAt"]?.stringValue ?? "") < ($1.allocation["createdAt"]?.stringValue ?? "") }
            let rows: [HTML] = waiting.enumerated().map { index, item in
                let allocation = item.allocation
                let reasons: [HTML] = (allocation["decisions"]?.arrayValue ?? []).map { decision in
                    "<li><strong>\(decision["region"]?.stringValue ?? "")</strong>: \(decision["reason"]?.stringValue ?? "")</li>"
                }
                let tenant: HTML = context.isAdmin ? "<td>\(item.tenant ?? "")</td>" : .empty
                return """
                    <tr><td>\(index + 1)</td><td>\(idLink(allocation))</td>\(tenant)\
                    <td>\(Int(allocation["replicas"]?.numberValue ?? 0))</td><td>\(shape(allocation["request"]))</td>\
                    <td>\(formatTime(allocation["queueDeadline"]?.stringValue))</td>\
                    <td><ul class="reasons">\(reasons)</ul></td></tr>
                    """
            }
            let headers = ["#", "Allocation"] + (context.isAdmin ? ["Tenant"] : []) + ["Replicas", "Shape", "Waits until", "Waiting for"]
            return Page(title: "Pending", section: "pending", body: """
                <h1>Pending queue</h1>
                <p>Allocations waiting for capacity, oldest first. The broker admits them as capacity appears,
                until their deadline: those waiting past the starvation limit first, then those of tenants with the
                lowest fair share, then the oldest. Each reason is what the region lacked when it was last tried.</p>
                <div id="live-pending" data-live>
                \(Layout.table(headers, rows, empty: "Nothing is waiting."))
                </div>
                """)
        }
    }

    /// Allocations of one status: the tenant's own (tenant nil), or every tenant's with its name (admin).
    static func allocations(_ context: ConsoleRequest, status: String) async throws -> [(tenant: String?, allocations: [JSONValue])] {
        let query = ["status": status, "limit": "100"]
        guard context.isAdmin else {
            return [(nil, try await context.api.get("/v1/allocations", query: query)["allocations"]?.arrayValue ?? [])]
        }
        var result: [(tenant: String?, allocations: [JSONValue])] = []
        for tenant in try await context.api.all("/v1/admin/tenants", "tenants") {
            let path = "/v1/admin/tenants/\(HTML.urlComponent(tenant["id"]?.stringValue ?? ""))/allocations"
            result.append((tenant["name"]?.stringValue, try await context.api.get(path, query: query)["allocations"]?.arrayValue ?? []))
        }
        return result
    }

    /// An allocation in the API: the tenant's own route, or the admin's route to any tenant's.
    static func apiPath(_ context: ConsoleRequest, _ id: String) -> String {
        (context.isAdmin ? "/v1/admin/allocations/" : "/v1/allocations/") + id
    }

    static func regionIds(_ context: ConsoleRequest) async throws -> [String] {
        (try await context.api.all("/v1/regions", "regions")).compactMap { $0["id"]?.stringValue }
    }

    /// The short id, a link to the allocation's page (the admin's opens any tenant's).
    /// The last 8 digits: ids are time-ordered (UUIDv7), so the first 8 of allocations made
    /// within a minute are the same.
    static func idLink(_ allocation: JSONValue) -> HTML {
        let id = allocation["id"]?.stringValue ?? ""
        return "<a class=\"id\" href=\"/console/allocations/\(HTML.urlComponent(id))\">\(String(id.suffix(8)))</a>"
    }

    static func row(_ allocation: JSONValue) -> HTML {
        let status = allocation["status"]?.stringValue ?? ""
        let instances = allocation["instances"]?.arrayValue ?? []
        let regions = Array(Set(instances.compactMap { $0["region"]?.stringValue })).sorted().joined(separator: ", ")
        return """
            <tr><td>\(idLink(allocation))</td><td>\(Layout.badge(status))</td>\
            <td>\(Int(allocation["placedReplicas"]?.numberValue ?? 0)) / \(Int(allocation["replicas"]?.numberValue ?? 0))</td>\
            <td>\(shape(allocation["request"]))</td><td>\(regions.isEmpty ? "—" : regions)</td>\
            <td>\(labels(allocation["labels"]))</td><td>\(formatTime(allocation["leaseExpiresAt"]?.stringValue))</td></tr>
            """
    }

    /// "gpu T4,A10 ×1 · 4 CPU · 15 GiB" from the request the broker understood.
    static func shape(_ request: JSONValue?) -> String {
        guard let request = request?["shape"] else { return "" }
        var parts = [request["computeClass"]?.stringValue ?? ""]
        if let series = request["gpuSeries"]?.arrayValue, !series.isEmpty {
            parts[0] += " " + series.compactMap(\.stringValue).joined(separator: ",")
                + " ×\(Int(request["gpuCount"]?.numberValue ?? 1))"
        }
        parts.append("\(formatNumber(request["cpu"]?.numberValue ?? 0)) CPU")
        parts.append("\(formatNumber(request["memoryGiB"]?.numberValue ?? 0)) GiB")
        return parts.joined(separator: " · ")
    }

    static func labels(_ labels: JSONValue?) -> HTML {
        let pairs: [HTML] = (labels?.objectValue ?? [:]).sorted { $0.key < $1.key }.map {
            "<span class=\"label\">\($0.key)=\($0.value.stringValue ?? "")</span>"
        }
        return pairs.isEmpty ? "—" : "\(pairs)"
    }

    static func filters(_ query: [String: String], regions: [String], tenants: [JSONValue]) -> HTML {
        func options(_ values: [(value: String, title: String)], _ selected: String?, any: Bool = true) -> [HTML] {
            (any ? ["<option value=\"\">any</option>"] : []) + values.map { value in
                "<option value=\"\(value.value)\"\(value.value == selected ? " selected" : "")>\(value.title)</option>"
            }
        }
        let tenantOptions = tenants.map { (value: $0["id"]?.stringValue ?? "", title: $0["name"]?.stringValue ?? "") }
        let tenant: HTML = tenants.isEmpty ? .empty
            : "<label>Tenant <select name=\"tenant\">\(options(tenantOptions, query["tenant"], any: false))</select></label>"
        return """
            <form method="get" action="/console/allocations" class="filters">\(tenant)
            <label>Status <select name="status">\(options(statuses.map { ($0, $0) }, query["status"]))</select></label>
            <label>Region <select name="region">\(options(regions.map { ($0, $0) }, query["region"]))</select></label>
            <button type="submit">Filter</button>
            </form>
            """
    }

    static func link(_ query: [String: String], cursor: String?) -> String {
        var query = query
        query["limit"] = nil
        query["cursor"] = cursor
        let items = query.sorted { $0.key < $1.key }.map { "\($0.key)=\(HTML.urlComponent($0.value))" }
        return "/console/allocations" + (items.isEmpty ? "" : "?" + items.joined(separator: "&"))
    }
}
