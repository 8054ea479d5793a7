import BrokerCore
import Foundation
import JSON

/// The `-o table` form of named policies and webhook endpoints.
extension Tables {
    static func policies(_ document: JSONValue, colour: Bool) -> String {
        var table = Table("NAME", "SELECTOR", "PLACEMENT")
        for policy in document["policies"]?.arrayValue ?? [] {
            let selector = policy["selector"]?.objectValue ?? [:]
            table.add(
                Cell(policy.text("name")), selector.isEmpty ? Cell("(every request)", .warn) : Cell(policy.text("selector")),
                Cell(policy["policy"].map(placementText) ?? "-"))
        }
        return table.render(colour: colour)
    }

    static func webhooks(_ document: JSONValue, colour: Bool) -> String {
        var table = Table("ID", "URL", "EVENTS", "STATUS", "AGE")
        for webhook in document["webhooks"]?.arrayValue ?? [] {
            let events = webhook["eventTypes"]?.arrayValue ?? []
            table.add(
                Cell(webhook.text("id")), Cell(webhook.text("url")), Cell(events.isEmpty ? "all" : webhook.text("eventTypes")),
                .state(webhook.text("status")), Cell(age(webhook["createdAt"]?.stringValue)))
        }
        return table.render(colour: colour)
    }

    static func deliveries(_ document: JSONValue, colour: Bool) -> String {
        var table = Table("ID", "EVENT", "ALLOCATION", "STATUS", "ATTEMPTS", "LAST STATUS", "AGE")
        for delivery in document["deliveries"]?.arrayValue ?? [] {
            table.add(
                Cell(delivery.text("id")), Cell(delivery.text("eventType")), Cell(delivery.text("allocationId")),
                .state(delivery.text("status")), Cell(delivery.text("attempts")), Cell(delivery.text("lastStatus")),
                Cell(age(delivery["createdAt"]?.stringValue)))
        }
        return table.render(colour: colour)
    }
}

/// The `-o table` form of the event feed and the usage report.
extension Tables {
    static func feed(_ page: JSONValue, colour: Bool, header: Bool) -> String {
        var table = Table("EVENT", "TYPE", "AT", "ALLOCATION", "REGION", "POOL", "DELTA", "ACTOR")
        for event in page["events"]?.arrayValue ?? [] {
            let data = event["data"] ?? .null
            table.add(
                Cell(data.text("eventId")), Cell(event.text("type")), Cell(data.text("at")), Cell(data.text("allocationId")),
                Cell(data.text("region")), Cell(data.text("poolId")), Cell(data.text("delta")), Cell(data.text("actor")))
        }
        let text = table.render(colour: colour)
        return header ? text : text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).dropFirst().joined()
    }

    static func usage(_ report: JSONValue, colour: Bool) -> String {
        let keys = (report["groupBy"]?.arrayValue ?? []).compactMap(\.stringValue)
        var table = Table(columns: keys.map { $0.uppercased() } + ["INSTANCE HOURS", "GPU HOURS", "COST"])
        for row in report["rows"]?.arrayValue ?? [] {
            table.add(row: keys.map { Cell(row.text($0)) } + [Cell(row.text("instanceHours")), Cell(row.text("gpuHours")), Cell(row.text("cost"))])
        }
        let total = report["total"] ?? .null
        let label: [Cell] = keys.isEmpty ? [] : Array(repeating: Cell(""), count: keys.count - 1) + [Cell("total", .bold)]
        table.add(row: label + [Cell(total.text("instanceHours")), Cell(total.text("gpuHours")), Cell(total.text("cost"))])
        return "\(report.text("from")) … \(report.text("to"))\n" + table.render(colour: colour)
    }
}
