import BrokerCore
import Foundation
import PostgresClient

/// Running instances over a time window, per region and per GPU series, read from the
/// ledger: `GET /v1/history/running` and the console's charts.
public struct RunningHistory: Codable, Sendable, Equatable {
    public struct Series: Codable, Sendable, Equatable {
        public var key: String
        /// Running instances at `from`, `from + step`, … `to`: `steps + 1` points.
        public var running: [Int]
    }

    public var from: Date
    public var to: Date
    public var stepSeconds: Double
    public var byRegion: [Series]
    public var byGpuSeries: [Series]
}

extension InventoryStore {
    /// The ledger's kinds that start or stop a running instance. `delta` counts capacity
    /// held, which an idle (warm) instance still does; a release to idle has delta 0
    /// but stops the instance running, and a reuse of an idle one has delta 0 but starts it.
    static let runningChange = """
        CASE l.kind WHEN 'reserved' THEN 1 WHEN 'released' THEN -1 WHEN 'expired' THEN -1
                    WHEN 'preempted' THEN -1 WHEN 'interrupted' THEN -1 WHEN 'failedToStart' THEN -1 ELSE 0 END
        """

    /// Running instances from `to - steps × step` to `to`, every `step`; a tenant's own
    /// (`tenantId`) or everyone's (nil). Reads the whole ledger up to `to`: the count at
    /// the window's start is the sum of everything before it. GPU series come from the
    /// pool, so instances of a pool removed since then count in `byRegion` only.
    public func runningHistory(tenantId: UUID?, to: Date, step: TimeInterval, steps: Int) async throws -> RunningHistory {
        let from = to.addingTimeInterval(-step * Double(steps))
        let rows = try await StoreError.translating {
            try await pool.withConnection { c in
                try c.query(
                    """
                    SELECT l.region_id, p.gpu_series,
                           GREATEST(-1, floor(extract(epoch FROM l.at - $1::timestamptz) / $2))::int AS bucket,
                           sum(\(Self.runningChange))::int AS change
                    FROM ledger l LEFT JOIN pools p ON p.region_id = l.region_id AND p.id = l.pool_id
                    WHERE l.region_id IS NOT NULL AND l.at <= $3
                      AND ($4::uuid IS NULL OR l.allocation_id IN (SELECT id FROM allocations WHERE tenant_id = $4))
                    GROUP BY 1, 2, 3
                    """,
                    [from, step, to, tenantId]
                ).map { row in
                    (region: try row.decode("region_id") as String, series: try row.decodeIfPresent("gpu_series") as String?,
                     bucket: try row.decode("bucket") as Int, change: try row.decode("change") as Int)
                }
            }
        }
        var regions: [String: [Int]] = [:]
        var series: [String: [Int]] = [:]
        func add(_ changes: inout [String: [Int]], _ key: String, _ bucket: Int, _ change: Int) {
            // changes[k][b + 1]: change during bucket b (bucket -1 = before the window).
            changes[key, default: Array(repeating: 0, count: steps + 1)][min(bucket, steps - 1) + 1] += change
        }
        for row in rows {
            add(&regions, row.region, row.bucket, row.change)
            if let gpuSeries = row.series { add(&series, gpuSeries, row.bucket, row.change) }
        }
        func accumulate(_ changes: [String: [Int]]) -> [RunningHistory.Series] {
            changes.map { key, deltas in
                var total = 0
                return RunningHistory.Series(key: key, running: deltas.map { total += $0; return total })
            }
            .filter { $0.running.contains { $0 != 0 } }
            .sorted { $0.key < $1.key }
        }
        return RunningHistory(
            from: from, to: to, stepSeconds: step, byRegion: accumulate(regions), byGpuSeries: accumulate(series))
    }
}
