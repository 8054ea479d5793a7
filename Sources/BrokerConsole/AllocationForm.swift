import BrokerCore
import JSON
import Foundation
import JSON

/// The "request capacity" form and the `POST /v1/allocations` body it makes. The form
/// checks nothing itself: the API validates the body and its problem is shown.
enum AllocationForm {
    static func render(_ context: ConsoleRequest, regions: [String]) -> HTML {
        let regionOptions: [HTML] = ["<option value=\"\">any (inventory-aware fallback)</option>"]
            + regions.map { "<option value=\"\($0)\">\($0) only</option>" }
        return """
            <section aria-labelledby="new-title" class="panel">
            <h2 id="new-title">Request capacity</h2>
            <form method="post" action="/console/allocations" class="grid-form">
            \(Layout.csrfField(context))
            <label>Compute class <select name="computeClass">\(options(gpuFirst))</select></label>
            <label>GPU series <input name="gpuSeries" value="T4" placeholder="T4,A10"
              aria-describedby="series-hint"></label>
            <span id="series-hint" class="hint">comma-separated, most preferred first (gpu class)</span>
            <label>GPUs per replica <input name="gpuCount" type="number" min="1" value="1"></label>
            <label>CPU per replica <input name="cpu" type="number" min="0" step="any" value="4"></label>
            <label>Memory GiB <input name="memoryGiB" type="number" min="0" step="any" value="15"></label>
            <label>Replicas <input name="replicas" type="number" min="1" value="1"></label>
            <label>Region <select name="region">\(regionOptions)</select></label>
            <label>QoS <select name="qos">\(options(QoS.allCases))</select></label>
            <label>Lease seconds <input name="leaseSeconds" type="number" min="10" max="86400" value="300"></label>
            <label>Labels <textarea name="labels" rows="2" placeholder="app=qwen3-8b"></textarea></label>
            <label class="check"><input type="checkbox" name="allOrNothing" value="1" checked> all or nothing</label>
            <label class="check"><input type="checkbox" name="queue" value="1"> wait in the queue if none is free</label>
            <button type="submit">Request</button>
            </form>
            </section>
            """
    }

    /// The classes a user picks from, the one most asked for first.
    static let gpuFirst = [ComputeClass.gpu] + ComputeClass.allCases.filter { $0 != .gpu }

    static func options<Word: RawRepresentable<String>>(_ words: [Word]) -> [HTML] {
        words.map { "<option value=\"\($0.rawValue)\">\($0.rawValue)</option>" }
    }

    /// A number as typed; anything else goes to the API as a string, which refuses it by name.
    static func number(_ text: String) -> JSONValue {
        if let value = Double(text), value.isFinite { return .number(value) }
        return .string(text)
    }

    static func body(_ context: ConsoleRequest) -> JSONValue {
        var body: [String: JSONValue] = [:]
        let computeClass = context.field("computeClass") ?? "gpu"
        body["computeClass"] = .string(computeClass)
        if computeClass == "gpu" {
            if let series = context.field("gpuSeries") {
                body["gpuSeries"] = .array(series.split(separator: ",").map {
                    .string($0.trimmingCharacters(in: .whitespaces))
                })
            }
            if let count = context.field("gpuCount") { body["gpuCount"] = number(count) }
        }
        for name in ["cpu", "memoryGiB", "replicas", "leaseSeconds"] {
            if let value = context.field(name) { body[name] = number(value) }
        }
        for name in ["region", "qos"] {
            if let value = context.field(name) { body[name] = .string(value) }
        }
        body["allOrNothing"] = .bool(context.form["allOrNothing"] != nil)
        body["queue"] = .bool(context.form["queue"] != nil)
        let labels = labels(context.form["labels"])
        if !labels.isEmpty { body["labels"] = .object(labels) }
        return .object(body)
    }

    /// "key=value" lines as a labels object.
    static func labels(_ text: String?) -> [String: JSONValue] {
        var labels: [String: JSONValue] = [:]
        for line in (text ?? "").split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: "=", maxSplits: 1)
            guard let key = parts.first?.trimmingCharacters(in: .whitespaces), !key.isEmpty else { continue }
            labels[key] = .string(parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : "")
        }
        return labels
    }
}
