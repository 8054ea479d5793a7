import BrokerCore
import JSON
import MicroHTTP

/// Per region, each pool's running / idle / free instances against its capacity; a
/// tenant also sees its live allocations.
enum OverviewPage {
    static func register(_ console: Console, _ router: inout Router) {
        console.page(&router, "/console/") { context in
            let regions = try await context.api.all("/v1/regions", "regions")
            var cards: [HTML] = []
            for region in regions {
                let id = region["id"]?.stringValue ?? ""
                let inventory = try await context.api.get("/v1/regions/\(HTML.urlComponent(id))/inventory")
                cards.append(card(region, pools: inventory["pools"]?.arrayValue ?? []))
            }
            let regionsHTML: HTML = cards.isEmpty
                ? (context.isAdmin
                    ? "<p class=\"empty\">No region yet: <a href=\"/console/admin/regions\">register one</a>.</p>"
                    : "<p class=\"empty\">No region yet.</p>")
                : "<div class=\"regions\">\(cards)</div>"
            let mine = context.isAdmin ? try await holders(context) : try await liveAllocations(context)
            return Page(title: "Overview", section: "overview", body: """
                <h1>Overview</h1>
                <div id="live-overview" data-live>
                <section aria-labelledby="regions-title">
                <h2 id="regions-title">Regions</h2>
                <p class="legend" aria-hidden="true"><span><span class="key running"></span>running</span>
                <span><span class="key idle"></span>idle (warm)</span> <span><span class="key free"></span>free</span></p>
                \(regionsHTML)
                </section>
                \(mine)
                </div>
                """)
        }
    }

    /// A region: its state, and a bar per pool.
    static func card(_ region: JSONValue, pools: [JSONValue]) -> HTML {
        let id = region["id"]?.stringValue ?? ""
        let cordoned = region["state"]?.stringValue == "cordoned"
        let capacity = pools.reduce(0) { $0 + ($1["capacity"]?.numberValue ?? 0) }
        let free = pools.reduce(0) { $0 + ($1["available"]?.numberValue ?? 0) }
        var badges: [HTML] = [Layout.badge(region["kind"]?.stringValue ?? "", "kind")]
        if region["primary"]?.boolValue == true { badges.append(Layout.badge("primary", tone: .good)) }
        if cordoned { badges.append(Layout.badge("cordoned")) }
        if let marker = scarcity(free: free, capacity: capacity) { badges.append(marker) }
        // Per series (CPU pools by class): 180 free CPU instances must not hide "T4 full".
        if !cordoned {
            let series = Dictionary(grouping: pools, by: seriesName)
            for name in series.keys.sorted() {
                let group = series[name] ?? []
                let grantable = group.reduce(0) { $0 + replicasLeft($1) }
                if let marker = scarcity(free: grantable, capacity: group.reduce(0) { $0 + ($1["capacity"]?.numberValue ?? 0) }, prefix: name + " ") {
                    badges.append(marker)
                }
            }
        }
        let standsOut = cordoned || (capacity > 0 && free == 0)
        let rows: [HTML] = pools.map(poolRow)
        let body: HTML = rows.isEmpty ? "<p class=\"empty\">No pool reported.</p>" : "<ul class=\"pools\">\(rows)</ul>"
        return """
            <article class="region\(standsOut ? " attention" : "")" aria-label="Region \(id)">
            <h3>\(id) \(badges)</h3>
            \(body)
            </article>
            """
    }

    /// `full` when nothing is left, `low` under a fifth of the capacity; nil otherwise.
    static func scarcity(free: Double, capacity: Double, prefix: String = "") -> HTML? {
        guard capacity > 0 else { return nil }
        if free == 0 { return Layout.badge(prefix + "full", "full", tone: .stuck) }
        return free / capacity < 0.2 ? Layout.badge(prefix + "low", "low", tone: .waiting) : nil
    }

    /// What a grant can get from the pool now: new instances and idle (warm) ones, the API's `availableReplicas`.
    static func replicasLeft(_ pool: JSONValue) -> Double {
        (pool["available"]?.numberValue ?? 0) + (pool["idle"]?.numberValue ?? 0)
    }

    /// A pool's GPU series, or its compute class when it has none.
    static func seriesName(_ pool: JSONValue) -> String {
        pool["gpuSeries"]?.stringValue ?? pool["computeClass"]?.stringValue ?? ""
    }

    static func poolRow(_ pool: JSONValue) -> HTML {
        let capacity = Int(pool["capacity"]?.numberValue ?? 0)
        let allocated = Int(pool["allocated"]?.numberValue ?? 0)
        let idle = Int(pool["idle"]?.numberValue ?? 0)
        let free = Int(pool["available"]?.numberValue ?? 0)
        let running = max(0, allocated - idle)
        let shape = [pool["gpuSeries"]?.stringValue.map { series in
            "\(Int(pool["gpusPerInstance"]?.numberValue ?? 1))× \(series)"
        }, "\(formatNumber(pool["cpu"]?.numberValue ?? 0)) CPU", "\(formatNumber(pool["memoryGiB"]?.numberValue ?? 0)) GiB"]
            .compactMap { $0 }.joined(separator: " · ")
        let price = formatNumber(pool["pricePerHour"]?.numberValue ?? 0)
        let summary = "\(running) running, \(idle) idle, \(free) free of \(capacity)"
        let marker: HTML = scarcity(free: replicasLeft(pool), capacity: Double(capacity)).map { " \($0)" } ?? .empty
        return """
            <li class="pool">
            <div class="pool-head"><strong>\(pool["id"]?.stringValue ?? "")</strong>\(marker)
            <span class="shape">\(shape)</span><span class="price">$\(price)/h</span></div>
            \(bar(running: running, idle: idle, free: free, capacity: capacity, label: summary))
            <div class="counts">\(summary)\(allocated > capacity ? " (over capacity)" : "")</div>
            </li>
            """
    }

    /// A stacked bar as inline SVG (widths as attributes: the page allows no inline style).
    static func bar(running: Int, idle: Int, free: Int, capacity: Int, label: String) -> HTML {
        let total = Double(max(1, max(capacity, running + idle + free)))
        var x = 0.0
        var rects: [HTML] = []
        for (count, kind) in [(running, "running"), (idle, "idle"), (free, "free")] where count > 0 {
            let width = Double(count) / total * 100
            rects.append(HTML(trusted: "<rect class=\"\(kind)\" x=\"\(x)\" y=\"0\" width=\"\(width)\" height=\"10\"/>"))
            x += width
        }
        return """
            <svg class="bar" viewBox="0 0 100 10" preserveAspectRatio="none" role="img" aria-label="\(label)">\
            <rect class="track" x="0" y="0" width="100" height="10"/>\(rects)</svg>
            """
    }

    /// The tenant's allocations that hold or wait for capacity.
    static func liveAllocations(_ context: ConsoleRequest) async throws -> HTML {
        var rows: [HTML] = []
        for status in AllocationStatus.live {
            let page = try await context.api.get("/v1/allocations", query: ["status": status.rawValue, "limit": "50"])
            rows += (page["allocations"]?.arrayValue ?? []).map(AllocationPages.row)
        }
        return """
            <section aria-labelledby="mine-title">
            <h2 id="mine-title">Your live allocations</h2>
            \(Layout.table(AllocationPages.columns, rows, empty: "None: request capacity on the Allocations page."))
            </section>
            """
    }

    /// For the admin: who holds capacity now, and how much waits.
    static func holders(_ context: ConsoleRequest) async throws -> HTML {
        var live: [String: [JSONValue]] = [:], waiting: [String: Int] = [:]
        for status in AllocationStatus.allCases where status.holdsLease {
            for (tenant, list) in try await AllocationPages.allocations(context, status: status.rawValue) {
                live[tenant ?? "", default: []] += list
            }
        }
        for (tenant, list) in try await AllocationPages.allocations(context, status: "pending") {
            waiting[tenant ?? "", default: 0] += list.count
        }
        let rows: [HTML] = Set(live.keys).union(waiting.keys).sorted().compactMap { tenant in
            let allocations = live[tenant] ?? []
            let running = allocations.flatMap { $0["instances"]?.arrayValue ?? [] }.filter { $0["state"]?.stringValue == "running" }
            guard !running.isEmpty || waiting[tenant, default: 0] > 0 else { return nil }
            let perRegion = Dictionary(grouping: running) { $0["region"]?.stringValue ?? "" }
                .sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.count)" }.joined(separator: ", ")
            // GPUs, not instances: an 8-GPU H100 instance holds eight.
            let gpus = Dictionary(grouping: running.filter { $0["gpuSeries"]?.stringValue != nil }) { $0["gpuSeries"]?.stringValue ?? "" }
                .sorted { $0.key < $1.key }
                .map { "\($0.key) \(Int($0.value.reduce(0) { $0 + ($1["gpuCount"]?.numberValue ?? 0) }))" }.joined(separator: ", ")
            return """
                <tr><th scope="row">\(tenant)</th><td>\(allocations.count)</td><td>\(running.count)</td>\
                <td>\(gpus.isEmpty ? "—" : gpus)</td><td>\(perRegion.isEmpty ? "—" : perRegion)</td><td>\(waiting[tenant, default: 0])</td></tr>
                """
        }
        return """
            <section aria-labelledby="holders-title">
            <h2 id="holders-title">Who holds capacity</h2>
            \(Layout.table(["Tenant", "Live allocations", "Running instances", "GPUs by series", "Instances by region", "Pending"], rows,
                           empty: "No tenant holds or waits for capacity."))
            </section>
            """
    }
}
