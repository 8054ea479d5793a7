import BrokerCore
import BrokerStore
import Foundation
import JSON
import MicroHTTP

/// Usage reports from the ledger: a tenant reads its own, the admin everyone's.
enum UsageRoutes {
    static func register(_ routes: inout RouteBuilder) {
        routes.add("GET", "/v1/usage") { request, context in
            let query = try UsageQuery.parse(request.query, now: Date(), allowsTenant: false)
            let tenantId = try context.tenant.id.uuid
            return try answer(request, try await context.services.usage.report(query, tenantId: tenantId))
        }
        routes.add("GET", "/v1/admin/usage") { request, context in
            let query = try UsageQuery.parse(request.query, now: Date(), allowsTenant: true)
            return try answer(request, try await context.services.usage.report(query))
        }
    }

    /// JSON, or CSV when the client asks for `text/csv` ahead of JSON.
    static func answer(_ request: HTTPRequest, _ report: UsageReport) throws -> HTTPResponse {
        if prefersCSV(request.headers["Accept"]) {
            return HTTPResponse(
                status: 200, headers: HTTPHeaders([("Content-Type", "text/csv; charset=utf-8")]),
                body: Array(csv(report).utf8))
        }
        return JSONBodies.response(200, encoded: try JSONBodies.encode(json(report)))
    }

    static func prefersCSV(_ accept: String?) -> Bool {
        guard let accept else { return false }
        let types = accept.split(separator: ",").map {
            $0[..<($0.firstIndex(of: ";") ?? $0.endIndex)].trimmingCharacters(in: .whitespaces).lowercased()
        }
        guard let csv = types.firstIndex(of: "text/csv") else { return false }
        return csv < (types.firstIndex { $0 == "application/json" || $0 == "*/*" } ?? types.endIndex)
    }

    /// The columns of the report's rows, in the order grouped by (a pool brings its region first).
    static func keyColumns(_ report: UsageReport) -> [UsageGrouping] {
        var columns: [UsageGrouping] = []
        for grouping in report.groupBy {
            for column in grouping == .pool ? [.region, .pool] : [grouping] where !columns.contains(column) {
                columns.append(column)
            }
        }
        return columns
    }

    static func figures(_ row: UsageRow) -> [String: JSONValue] {
        ["instanceHours": .number(row.instanceHours), "gpuHours": .number(row.gpuHours), "cost": .number(row.cost)]
    }

    static func json(_ report: UsageReport) -> JSONValue {
        let columns = keyColumns(report)
        let rows: [JSONValue] = report.rows.map { row in
            var object = figures(row)
            for column in columns {
                if let value = row.keys[column] { object[column.rawValue] = .string(value) }
            }
            return .object(object)
        }
        return .object([
            "from": .string(JSONWriter.iso8601(report.from)), "to": .string(JSONWriter.iso8601(report.to)),
            "groupBy": .array(report.groupBy.map { .string($0.rawValue) }), "rows": .array(rows),
            "total": .object(figures(report.total)),
        ])
    }

    /// RFC 4180: a header line, then one line per group; an absent key is an empty field.
    static func csv(_ report: UsageReport) -> String {
        let columns = keyColumns(report)
        var lines = [(columns.map(\.rawValue) + ["instanceHours", "gpuHours", "cost"]).joined(separator: ",")]
        for row in report.rows {
            let keys = columns.map { field(row.keys[$0] ?? "") }
            let numbers = [row.instanceHours, row.gpuHours, row.cost].map { "\($0)" }
            lines.append((keys + numbers).joined(separator: ","))
        }
        return lines.map { $0 + "\r\n" }.joined()
    }

    static func field(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
