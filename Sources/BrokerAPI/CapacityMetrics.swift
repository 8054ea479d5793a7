import BrokerCore
import BrokerStore

/// The inventory and the pending queue as Prometheus gauges, read when `/metrics` is
/// scraped (so removed pools leave no stale series): what to alert on when a region runs
/// out of a series. The words are the API's (`available` is new instances a pool can
/// still give; `availableReplicas` adds its idle ones, what a grant can get now).
enum CapacityMetrics {
    struct Family {
        var name: String
        var help: String
        var samples: [(labels: [(String, String)], value: Double)] = []
    }

    static func text(regions: [RegionInventory], pending: [PendingDemand]) -> String {
        var families = [
            Family(name: "pool_capacity_instances", help: "Instances the pool's region can give (as last reported)."),
            Family(name: "pool_running_instances", help: "Instances of the pool running for allocations."),
            Family(name: "pool_idle_instances", help: "Idle (warm) instances, reused first by the next grant."),
            Family(name: "pool_available_instances", help: "New instances the pool can still give: max(0, capacity - allocated)."),
            Family(name: "pool_available_replicas", help: "Replicas a grant can get from the pool now: available plus idle; 0 when its region is cordoned."),
            Family(name: "pool_price_per_hour", help: "Price of one instance-hour."),
            Family(name: "pool_gpus_per_instance", help: "GPUs of one instance (0 for CPU classes)."),
        ]
        for region in regions {
            for usage in region.pools {
                let pool = usage.pool
                let labels = [
                    ("region", region.region.id), ("pool", pool.id), ("compute_class", pool.computeClass.rawValue),
                    ("gpu_series", pool.gpuSeries ?? ""),
                ]
                let grantable = region.region.state == .active ? usage.grantable : 0
                let values = [
                    pool.capacity, usage.allocated - usage.idle, usage.idle, usage.available, grantable,
                ].map(Double.init) + [pool.pricePerHour, Double(pool.gpusPerInstance ?? 0)]
                for index in families.indices { families[index].samples.append((labels, values[index])) }
            }
        }
        var queue = [
            Family(name: "pending_allocations", help: "Allocations waiting in the queue, per compute class, accepted GPU series and pinned region (* = any)."),
            Family(name: "pending_replicas", help: "Replicas the pending allocations still miss."),
            Family(name: "pending_oldest_wait_seconds", help: "Seconds the oldest pending allocation has waited."),
        ]
        for group in pending {
            let labels = [("compute_class", group.computeClass), ("gpu_series", group.gpuSeries), ("region", group.region)]
            let values = [Double(group.allocations), Double(group.replicas), group.oldestWaitSeconds]
            for index in queue.indices { queue[index].samples.append((labels, values[index])) }
        }
        return (families + queue).map(render).joined()
    }

    static func render(_ family: Family) -> String {
        var text = "# HELP \(family.name) \(family.help)\n# TYPE \(family.name) gauge\n"
        for sample in family.samples {
            let labels = sample.labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",")
            text += "\(family.name){\(labels)} \(number(sample.value))\n"
        }
        return text
    }

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : "\(value)"
    }
}
