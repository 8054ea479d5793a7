import BrokerCore
import BrokerStore
import Foundation
import Metrics
import Synchronization

/// Month-to-date spend and GPU-hours per region and GPU series as gauges, read from
/// the ledger (not per tenant: one series per tenant would grow without bound). Every
/// broker computes the same figures from the shared database.
public final class UsageMeter: Sendable {
    let store: UsageStore
    /// Series set by the last step, so that a group that leaves the report (a new
    /// month) reads 0 instead of its last value.
    private let shown = Mutex<Set<[String]>>([])

    public init(store: UsageStore) {
        self.store = store
    }

    /// Reads this month's usage and sets the gauges; returns the series set.
    func step(now: Date = Date()) async throws -> Int {
        let report = try await store.report(
            UsageQuery(from: UsageQuery.monthStart(of: now), groupBy: [.region, .gpuSeries]))
        var current: [[String]: UsageRow] = [:]
        for row in report.rows {
            current[[row.keys[.region] ?? "", row.keys[.gpuSeries] ?? "none"]] = row
        }
        let stale = shown.withLock { shown in
            defer { shown = Set(current.keys) }
            return shown.subtracting(current.keys)
        }
        for key in stale { Self.record(key, UsageRow()) }
        for (key, row) in current { Self.record(key, row) }
        return current.count
    }

    static func record(_ key: [String], _ row: UsageRow) {
        let dimensions = [("region", key[0]), ("gpu_series", key[1])]
        Gauge(label: "usage_spend_month_to_date", dimensions: dimensions).record(row.cost)
        Gauge(label: "usage_gpu_hours_month_to_date", dimensions: dimensions).record(row.gpuHours)
        Gauge(label: "usage_instance_hours_month_to_date", dimensions: dimensions).record(row.instanceHours)
    }
}
