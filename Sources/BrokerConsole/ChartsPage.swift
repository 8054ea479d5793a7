import BrokerCore
import JSON
import Foundation
import JSON
import MicroHTTP

/// The last 24 hours of running instances per region and per GPU series, drawn as
/// inline SVG from `GET /v1/history/running` (the ledger).
enum ChartsPage {
    static let width = 960.0, height = 260.0
    static let left = 44.0, right = 12.0, top = 22.0, bottom = 28.0
    static let palette = 8

    static func register(_ console: Console, _ router: inout Router) {
        console.page(&router, "/console/charts") { context in
            let history = try await context.api.get("/v1/history/running", query: ["hours": "24"])
            let from = parse(history["from"]?.stringValue), step = history["stepSeconds"]?.numberValue ?? 900
            let whose = context.isAdmin ? "every tenant's" : "your"
            return Page(title: "Charts", section: "charts", body: """
                <h1>Running instances, last 24 hours</h1>
                <p>Counted from the ledger: \(whose) running instances (idle warm ones not included).</p>
                <div id="live-charts" data-live>
                \(chart("By region", "region", history["byRegion"]?.arrayValue ?? [], from: from, step: step))
                \(chart("By GPU series", "series", history["byGpuSeries"]?.arrayValue ?? [], from: from, step: step))
                </div>
                """)
        }
    }

    static func parse(_ iso: String?) -> Date {
        guard let iso else { return Date() }
        return (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(iso)) ?? Date()
    }

    /// A line per key over the window, with hour ticks, and the figures as a table too.
    static func chart(_ title: String, _ id: String, _ series: [JSONValue], from: Date, step: Double) -> HTML {
        let lines = series.map { (key: $0["key"]?.stringValue ?? "", points: ($0["running"]?.arrayValue ?? []).map { Int($0.numberValue ?? 0) }) }
        guard !lines.isEmpty else {
            return "<section class=\"chart\"><h2>\(title)</h2><p class=\"empty\">Nothing ran in the last 24 hours.</p></section>"
        }
        let count = max(2, lines.map(\.points.count).max() ?? 2)
        let peak = max(1, lines.flatMap(\.points).max() ?? 1)
        let yMax = niceCeiling(peak)
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        func x(_ index: Int) -> Double { left + plotWidth * Double(index) / Double(count - 1) }
        func y(_ value: Int) -> Double { top + plotHeight * (1 - Double(value) / Double(yMax)) }
        var grid: [HTML] = []
        for tick in stride(from: 0, through: yMax, by: max(1, yMax / 4)) {
            grid.append(HTML(trusted: """
                <line class="grid" x1="\(left)" x2="\(width - right)" y1="\(y(tick))" y2="\(y(tick))"/>\
                <text class="tick" x="\(left - 6)" y="\(y(tick) + 4)" text-anchor="end">\(tick)</text>
                """))
        }
        let hour = 3600.0 / step
        for index in stride(from: 0.0, through: Double(count - 1), by: hour * 6) {
            let at = from.addingTimeInterval(index * step)
            let label = at.formatted(Date.VerbatimFormatStyle(
                format: "\(hour: .twoDigits(clock: .twentyFourHour, hourCycle: .zeroBased)):\(minute: .twoDigits)",
                timeZone: .gmt, calendar: Calendar(identifier: .gregorian)))
            let position = left + plotWidth * index / Double(count - 1)
            let anchor = position > width - right - 30 ? "end" : "middle"  // the last label stays inside
            grid.append(HTML(trusted: "<text class=\"tick\" x=\"\(position)\" y=\"\(height - 8)\" text-anchor=\"\(anchor)\">"
                + HTML.escape(label) + "</text>"))
        }
        var paths: [HTML] = []
        var legend: [HTML] = []
        var rows: [HTML] = []
        for (index, line) in lines.enumerated() {
            let colour = "c\(index % palette)"
            let points = line.points.enumerated().map { "\(x($0.offset)),\(y($0.element))" }.joined(separator: " ")
            paths.append("<polyline class=\"line \(colour)\" points=\"\(points)\"><title>\(line.key)</title></polyline>")
            legend.append("<li><span class=\"swatch \(colour)\" aria-hidden=\"true\"></span>\(line.key)</li>")
            rows.append("<tr><th scope=\"row\">\(line.key)</th><td>\(line.points.last ?? 0)</td><td>\(line.points.max() ?? 0)</td></tr>")
        }
        let summary = lines.map { "\($0.key): \($0.points.last ?? 0) now" }.joined(separator: ", ")
        return """
            <section class="chart" aria-labelledby="chart-\(id)">
            <h2 id="chart-\(id)">\(title)</h2>
            <svg viewBox="0 0 \(Int(width)) \(Int(height))" role="img" aria-label="\(title): \(summary)">\(grid)\(paths)</svg>
            <ul class="chart-legend">\(legend)</ul>
            \(Layout.table(["", "Running now", "Highest sample"], rows, empty: "", caption: "\(title), figures"))
            </section>
            """
    }

    /// 1, 2, 5 × 10^n at or above `value`: axis ends a person reads easily.
    static func niceCeiling(_ value: Int) -> Int {
        var magnitude = 1
        while magnitude * 10 <= value { magnitude *= 10 }
        for factor in [1, 2, 4, 5, 10] where factor * magnitude >= value { return factor * magnitude }
        return 10 * magnitude
    }
}
