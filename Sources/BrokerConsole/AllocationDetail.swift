import BrokerCore
import JSON

/// One allocation: what it holds, why it was placed there, what happened to it, and
/// the forms to scale, renew and release it.
enum AllocationDetail {
    static func render(_ context: ConsoleRequest, _ allocation: JSONValue, _ events: [JSONValue]) -> HTML {
        let id = allocation["id"]?.stringValue ?? ""
        let status = allocation["status"]?.stringValue ?? ""
        let live = AllocationStatus(rawValue: status).map { !$0.hasEnded } ?? false
        return """
            <h1>Allocation <span class="id">\(id)</span></h1>
            <div id="live-allocation" data-live>
            \(summary(allocation))
            \(instances(allocation["instances"]?.arrayValue ?? []))
            \(decisions(allocation["decisions"]?.arrayValue ?? []))
            \(timeline(events))
            </div>
            \(live ? actions(context, id, allocation) : "<p class=\"empty\">This allocation has ended.</p>")
            """
    }

    static func summary(_ allocation: JSONValue) -> HTML {
        let status = allocation["status"]?.stringValue ?? ""
        return """
            <dl class="summary">
            <div><dt>Status</dt><dd>\(Layout.badge(status))</dd></div>
            <div><dt>Placed</dt><dd>\(Int(allocation["placedReplicas"]?.numberValue ?? 0)) of \
            \(Int(allocation["replicas"]?.numberValue ?? 0))</dd></div>
            <div><dt>Shape</dt><dd>\(AllocationPages.shape(allocation["request"]))</dd></div>
            <div><dt>Lease until</dt><dd>\(formatTime(allocation["leaseExpiresAt"]?.stringValue))</dd></div>
            <div><dt>Queue deadline</dt><dd>\(formatTime(allocation["queueDeadline"]?.stringValue))</dd></div>
            <div><dt>Created</dt><dd>\(formatTime(allocation["createdAt"]?.stringValue))</dd></div>
            <div><dt>Labels</dt><dd>\(AllocationPages.labels(allocation["labels"]))</dd></div>
            </dl>
            """
    }

    static func instances(_ instances: [JSONValue]) -> HTML {
        let rows: [HTML] = instances.map { instance in
            """
            <tr><td class="id">\(String((instance["id"]?.stringValue ?? "").suffix(8)))</td>\
            <td>\(Layout.badge(instance["state"]?.stringValue ?? ""))\(stops(instance))</td>\
            <td>\(instance["region"]?.stringValue ?? "")</td><td>\(instance["poolId"]?.stringValue ?? "")</td>\
            <td>\(instance["instanceType"]?.stringValue ?? "")</td><td>\(instance["gpuSeries"]?.stringValue ?? "—")</td>\
            <td>\(instance["vSwitchId"]?.stringValue ?? "")</td>\
            <td>\(instance["unit"]?.numberValue.map { String(Int($0)) } ?? "—")</td></tr>
            """
        }
        return """
            <section aria-labelledby="instances-title"><h2 id="instances-title">Instances</h2>
            \(Layout.table(["Instance", "State", "Region", "Pool", "Type", "GPU", "vSwitch", "Unit"], rows,
                           empty: "No instance placed."))
            </section>
            """
    }

    /// When an instance under preemption notice stops.
    static func stops(_ instance: JSONValue) -> HTML {
        guard let deadline = instance["preemptDeadline"]?.stringValue, instance["state"]?.stringValue == "preempting" else {
            return ""
        }
        return " <span class=\"deadline\">stops at <time datetime=\"\(deadline)\">\(deadline)</time></span>"
    }

    static func decisions(_ decisions: [JSONValue]) -> HTML {
        let rows: [HTML] = decisions.map { decision in
            """
            <tr><td>\(decision["region"]?.stringValue ?? "")</td>\
            <td>\(Int(decision["replicas"]?.numberValue ?? 0))</td><td>\(decision["reason"]?.stringValue ?? "")</td></tr>
            """
        }
        return """
            <section aria-labelledby="decisions-title"><h2 id="decisions-title">Placement decisions</h2>
            \(Layout.table(["Region", "Replicas", "Why"], rows, empty: "No decision recorded."))
            </section>
            """
    }

    static func timeline(_ events: [JSONValue]) -> HTML {
        let items: [HTML] = events.reversed().map { event in
            let delta = Int(event["delta"]?.numberValue ?? 0)
            let place = [event["region"]?.stringValue, event["poolId"]?.stringValue].compactMap { $0 }.joined(separator: "/")
            return """
                <li><time>\(formatTime(event["at"]?.stringValue))</time> \(Layout.badge(event["kind"]?.stringValue ?? "", "event"))
                \(place) <span class="delta">\(delta > 0 ? "+\(delta)" : String(delta))</span>
                <span class="actor">by \(event["actor"]?.stringValue ?? "")</span></li>
                """
        }
        let list: HTML = items.isEmpty ? "<p class=\"empty\">No event yet.</p>" : "<ol class=\"timeline\" reversed>\(items)</ol>"
        return """
            <section aria-labelledby="events-title"><h2 id="events-title">Events</h2>
            \(list)
            </section>
            """
    }

    static func actions(_ context: ConsoleRequest, _ id: String, _ allocation: JSONValue) -> HTML {
        let base = "/console/allocations/\(HTML.urlComponent(id))"
        return """
            <section aria-labelledby="actions-title" class="panel actions">
            <h2 id="actions-title">Change</h2>
            <form method="post" action="\(base)/scale" class="inline">\(Layout.csrfField(context))
              <label>Replicas <input name="replicas" type="number" min="1"
                value="\(Int(allocation["replicas"]?.numberValue ?? 1))"></label>
              <button type="submit">Scale</button></form>
            <form method="post" action="\(base)/renew" class="inline">\(Layout.csrfField(context))
              <label>Lease seconds <input name="leaseSeconds" type="number" min="10" max="86400"
                value="\(Int(allocation["leaseSeconds"]?.numberValue ?? 300))"></label>
              <button type="submit">Renew</button></form>
            \(Layout.button(context, "\(base)/release", "Release", style: "danger",
                confirm: "Release every instance of this allocation? Its workloads lose their capacity."))
            </section>
            """
    }
}
