import BrokerStore
import JSON

/// The JSON the event feed answers with, beside the event bodies themselves (written
/// by the database, `gpb_event_json` and `gpb_inventory_event_json`): a page of the
/// feed and the last event of a watch stream. `EventShapeTests` check each against its
/// schema in openapi/openapi.yaml (`EventPage`, `StreamEnd`).
public enum EventBodies {
    /// `GET /v1/events`: the events, joined as the database wrote them, and where the next page starts.
    public static func page(_ events: [FeedEvent], nextAfter: FeedPosition) -> [UInt8] {
        var json = JSONWriter(capacity: 64 + events.reduce(0) { $0 + $1.json.utf8.count + 1 })
        json.beginObject()
        json.key("events")
        json.beginArray()
        for event in events { json.raw(Array(event.json.utf8)) }
        json.endArray()
        json.member("nextAfter", nextAfter.description)
        json.endObject()
        return json.bytes
    }

    /// The `data` of a stream's last event (`dropped`, `shutdown`): why it ends.
    public static func streamEnd(reason: String) -> String {
        var json = JSONWriter(capacity: 32 + reason.utf8.count)
        json.beginObject()
        json.member("reason", reason)
        json.endObject()
        return json.text
    }
}
