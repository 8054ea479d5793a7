import BrokerCore
import JSON
import MicroHTTP

/// Pools: every region's pools with a form to report capacity and price, and a form
/// to report a new pool. A report replaces the pool (`PUT`), so the console sends the
/// pool's other fields as the API answered them.
enum PoolAdmin {
    /// The fields of a pool report (the rest of a pool's answer is usage).
    static let specFields = [
        "computeClass", "qos", "gpuSeries", "gpuVendor", "gpuMemoryGiB", "gpusPerInstance", "gpuPartitions",
        "gpuInterconnect", "cpu", "memoryGiB", "instanceType", "capacity", "pricePerHour", "deferScaleInSeconds",
    ]
    /// Fields the form sends as text, and those it sends as comma-separated lists.
    static let textFields: Set<String> = ["computeClass", "gpuSeries", "gpuVendor", "instanceType"]
    static let listFields: Set<String> = ["gpuPartitions", "gpuInterconnect"]

    static func register(_ console: Console, _ router: inout Router) {
        console.page(&router, "/console/admin/pools") { context in
            let regions = try await AllocationPages.regionIds(context)
            var sections: [HTML] = []
            for region in regions {
                let pools = try await context.api.get("/v1/regions/\(HTML.urlComponent(region))/inventory")["pools"]?.arrayValue ?? []
                let rows: [HTML] = pools.map { row(context, region, $0) }
                sections.append("""
                    <section aria-label="Pools of \(region)"><h2>\(region)</h2>
                    \(Layout.table(["Pool", "Shape", "Type", "In use", "Capacity and price"], rows, empty: "No pool reported."))
                    </section>
                    """)
            }
            let options: [HTML] = regions.map { "<option>\($0)</option>" }
            let vendors: [HTML] = AcceleratorVendor.allCases.map { "<option>\($0.rawValue)</option>" }
            return Page(title: "Pools", section: "pools", body: """
                <h1>Pools</h1>
                \(sections)
                <section class="panel" aria-labelledby="report-title"><h2 id="report-title">Report a pool</h2>
                <form method="post" action="/console/admin/pools" class="grid-form">\(Layout.csrfField(context))
                <label>Region <select name="region">\(options)</select></label>
                <label>Pool id <input name="pool" required placeholder="t4"></label>
                <label>Compute class <select name="computeClass"><option>gpu</option><option>general-purpose</option>
                  <option>performance</option></select></label>
                <label>GPU model <input name="gpuSeries" placeholder="T4"></label>
                <label>Vendor <select name="gpuVendor"><option value="">inferred from the model</option>\(vendors)</select></label>
                <label>GPU memory GiB <input name="gpuMemoryGiB" type="number" min="0" step="any"></label>
                <label>GPUs per instance <input name="gpusPerInstance" type="number" min="1"></label>
                <label>Partitions <input name="gpuPartitions" placeholder="1g.10gb,3g.40gb"></label>
                <label>Interconnect <input name="gpuInterconnect" placeholder="nvlink"></label>
                <label>CPU <input name="cpu" type="number" min="0" step="any" required></label>
                <label>Memory GiB <input name="memoryGiB" type="number" min="0" step="any" required></label>
                <label>Instance type <input name="instanceType" required></label>
                <label>Capacity <input name="capacity" type="number" min="0" required></label>
                <label>Price per hour <input name="pricePerHour" type="number" min="0" step="any" required></label>
                <button type="submit">Report</button>
                </form></section>
                """)
        }
        console.action(&router, "/console/admin/pools") { context in
            var body: [String: JSONValue] = [:]
            for name in specFields {
                guard let value = context.field(name), !value.isEmpty else { continue }
                if listFields.contains(name) {
                    body[name] = .array(value.split(separator: ",").map { .string($0.trimmingCharacters(in: .whitespaces)) })
                } else {
                    body[name] = textFields.contains(name) ? .string(value) : AllocationForm.number(value)
                }
            }
            if body["computeClass"] != .string("gpu") {
                for name in PoolSpec.gpuFields { body[name] = nil }
            }
            try await put(context, region: context.field("region") ?? "", pool: context.field("pool") ?? "", body)
            return Redirect(location: "/console/admin/pools")
        }
        console.action(&router, "/console/admin/pools/{region}/{pool}") { context in
            let region = context.parameter("region"), poolId = context.parameter("pool")
            let pools = try await context.api.get("/v1/regions/\(HTML.urlComponent(region))/inventory")["pools"]?.arrayValue ?? []
            guard let pool = pools.first(where: { $0["id"]?.stringValue == poolId })?.objectValue else {
                throw APIClient.Failure(answer: .init(status: 404, json: ["detail": .string("pool '\(poolId)' not found")]))
            }
            var body = pool.filter { specFields.contains($0.key) && !$0.value.isNull }
            for name in ["capacity", "pricePerHour"] {
                if let value = context.field(name) { body[name] = AllocationForm.number(value) }
            }
            try await put(context, region: region, pool: poolId, body)
            return Redirect(location: "/console/admin/pools")
        }
    }

    static func put(_ context: ConsoleRequest, region: String, pool: String, _ body: [String: JSONValue]) async throws {
        let path = "/v1/admin/regions/\(HTML.urlComponent(region))/pools/\(HTML.urlComponent(pool))"
        _ = try Console.change(await context.api.call("PUT", path, body: .object(body)))
    }

    static func row(_ context: ConsoleRequest, _ region: String, _ pool: JSONValue) -> HTML {
        let id = pool["id"]?.stringValue ?? ""
        let allocated = Int(pool["allocated"]?.numberValue ?? 0), idle = Int(pool["idle"]?.numberValue ?? 0)
        let vendor = pool["gpuVendor"]?.stringValue.map { "\($0) " } ?? ""
        let series = pool["gpuSeries"]?.stringValue.map { "\(Int(pool["gpusPerInstance"]?.numberValue ?? 1))× \(vendor)\($0) · " } ?? ""
        let action = "/console/admin/pools/\(HTML.urlComponent(region))/\(HTML.urlComponent(id))"
        return """
            <tr><th scope="row">\(id)</th>\
            <td>\(pool["computeClass"]?.stringValue ?? "") \(series)\(formatNumber(pool["cpu"]?.numberValue ?? 0)) CPU · \
            \(formatNumber(pool["memoryGiB"]?.numberValue ?? 0)) GiB</td><td>\(pool["instanceType"]?.stringValue ?? "")</td>\
            <td>\(allocated - idle) running, \(idle) idle</td>\
            <td><form method="post" action="\(action)" class="inline">\(Layout.csrfField(context))\
            <label>Capacity <input name="capacity" type="number" min="0" class="short"
              value="\(Int(pool["capacity"]?.numberValue ?? 0))"></label>\
            <label>$/h <input name="pricePerHour" type="number" min="0" step="any" class="short"
              value="\(formatNumber(pool["pricePerHour"]?.numberValue ?? 0))"></label>\
            <button type="submit">Report</button></form></td></tr>
            """
    }
}
