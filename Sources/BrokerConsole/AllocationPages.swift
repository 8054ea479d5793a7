import BrokerCore
import Foundation
import MicroHTTP

/// A tenant's allocations: the filtered, paged list with the request form, one
/// allocation with its instances, decisions and events, and the pending queue.
enum AllocationPages {
    static let columns = ["Allocation", "Status", "Placed", "Shape", "Regions", "Labels", "Lease until"]
    static let statuses = ["pending", "active", "partial", "released", "expired", "unschedulable"]

    static func register(_ console: Console, _ router: inout Router) {
        console.page(&router, "/console/allocations") { context in
            var query = ["limit": "20"]
            for name in ["status", "region", "cursor"] {
                if let value = context.request.query[name], !value.isEmpty { query[name] = value }
            }
            let page = try await context.api.get("/v1/allocations", query: query)
            let regions = try await regionIds(context)
            let rows = (page["allocations"]?.arrayValue ?? []).map(row)
            var pager: [HTML] = []
            if query["cursor"] != nil { pager.append("<a href=\"\(link(query, cursor: nil))\">First page</a>") }
            if let next = page["nextCursor"]?.stringValue { pager.append("<a href=\"\(link(query, cursor: next))\">Next page</a>") }
            return Page(title: "Allocations", section: "allocations", body: """
                <h1>Allocations</h1>
                \(filters(query, regions: regions))
                <div id="live-allocations" data-live>
                \(Layout.table(columns, rows, empty: "No allocation matches."))
                </div>
                <nav class="pager" aria-label="Pages">\(pager)</nav>
                \(AllocationForm.render(context, regions: regions))
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
            let allocation = try await context.api.get("/v1/allocations/\(id)")
            let events = try await context.api.get("/v1/allocations/\(id)/events")["events"]?.arrayValue ?? []
            return Page(title: "Allocation", section: "allocations", body: AllocationDetail.render(context, allocation, events))
        }
        console.action(&router, "/console/allocations/{id}/scale") { context in
            let path = "/v1/allocations/\(HTML.urlComponent(context.parameter("id")))"
            let replicas = context.field("replicas").map(AllocationForm.number) ?? .null
            _ = try Console.change(await context.api.call("PATCH", path, body: ["replicas": replicas]))
            console.sessions.addFlash(context.session.id, Flash(kind: .info, text: "Scaled."))
            return Redirect(location: "/console/allocations/\(HTML.urlComponent(context.parameter("id")))")
        }
        console.action(&router, "/console/allocations/{id}/renew") { context in
            let id = HTML.urlComponent(context.parameter("id"))
            let body: JSONValue = context.field("leaseSeconds").map { ["leaseSeconds": AllocationForm.number($0)] } ?? [:]
            _ = try Console.change(await context.api.call("POST", "/v1/allocations/\(id)/renew", body: body))
            console.sessions.addFlash(context.session.id, Flash(kind: .info, text: "Lease renewed."))
            return Redirect(location: "/console/allocations/\(id)")
        }
        console.action(&router, "/console/allocations/{id}/release") { context in
            let id = HTML.urlComponent(context.parameter("id"))
            _ = try Console.change(await context.api.call("DELETE", "/v1/allocations/\(id)"))
            console.sessions.addFlash(context.session.id, Flash(kind: .info, text: "Released."))
            return Redirect(location: "/console/allocations/\(id)")
        }
        console.page(&router, "/console/pending") { context in
            let page = try await context.api.get("/v1/allocations", query: ["status": "pending", "limit": "100"])
            let rows: [HTML] = (page["allocations"]?.arrayValue ?? []).enumerated().map { index, allocation in
                let reasons: [HTML] = (allocation["decisions"]?.arrayValue ?? []).map { decision in
                    "<li><strong>\(decision["region"]?.stringValue ?? "")</strong>: \(decision["reason"]?.stringValue ?? "")</li>"
                }
                return """
                    <tr><td>\(index + 1)</td><td>\(idLink(allocation))</td>\
                    <td>\(Int(allocation["replicas"]?.numberValue ?? 0))</td><td>\(shape(allocation["request"]))</td>\
                    <td>\(formatTime(allocation["queueDeadline"]?.stringValue))</td>\
                    <td><ul class="reasons">\(reasons)</ul></td></tr>
                    """
            }
            return Page(title: "Pending", section: "pending", body: """
                <h1>Pending queue</h1>
                <p>Allocations waiting for capacity, oldest first: the broker admits them in this order as
                capacity appears, until their deadline.</p>
                <div id="live-pending" data-live>
                \(Layout.table(["#", "Allocation", "Replicas", "Shape", "Waits until", "Waiting for"], rows,
                               empty: "Nothing is waiting."))
                </div>
                """)
        }
    }

    static func regionIds(_ context: ConsoleRequest) async throws -> [String] {
        (try await context.api.get("/v1/regions")["regions"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
    }

    static func idLink(_ allocation: JSONValue) -> HTML {
        let id = allocation["id"]?.stringValue ?? ""
        return "<a class=\"id\" href=\"/console/allocations/\(HTML.urlComponent(id))\">\(String(id.prefix(8)))</a>"
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

    static func filters(_ query: [String: String], regions: [String]) -> HTML {
        func options(_ values: [String], _ selected: String?) -> [HTML] {
            ["<option value=\"\">any</option>"] + values.map { value in
                "<option value=\"\(value)\"\(value == selected ? " selected" : "")>\(value)</option>"
            }
        }
        return """
            <form method="get" action="/console/allocations" class="filters">
            <label>Status <select name="status">\(options(statuses, query["status"]))</select></label>
            <label>Region <select name="region">\(options(regions, query["region"]))</select></label>
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
