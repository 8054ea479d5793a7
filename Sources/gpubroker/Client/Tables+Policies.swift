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
