import BrokerCore
import Foundation
import PostgresClient

/// Pending allocations grouped by what they wait for: compute class, the GPU series
/// they accept (comma-separated, most preferred first; empty for CPU classes or a model's
/// memory need) and their pinned region (`*`: any region).
public struct PendingDemand: Sendable, Equatable {
    public var computeClass: String
    public var gpuSeries: String
    public var region: String
    public var allocations: Int
    /// Replicas they still miss.
    public var replicas: Int
    /// Seconds the oldest of them has waited.
    public var oldestWaitSeconds: Double
}

extension AllocationStore {
    /// The pending queue's depth and oldest wait per class, series and region, for `/metrics`.
    public func pendingDemand() async throws -> [PendingDemand] {
        try await StoreError.translating {
            try await pool.withConnection { c in
                try c.query(
                    """
                    SELECT request->'shape'->>'computeClass' AS compute_class,
                           coalesce((SELECT string_agg(s, ',') FROM jsonb_array_elements_text(request->'shape'->'gpuSeries') s), '')
                               AS gpu_series,
                           coalesce(request->>'region', '*') AS region,
                           count(*)::bigint AS allocations, sum(replicas - placed_replicas)::bigint AS replicas,
                           extract(epoch FROM clock_timestamp() - min(created_at))::float8 AS oldest
                    FROM allocations WHERE status = 'pending'
                    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
                    """
                ).map { row in
                    PendingDemand(
                        computeClass: try row.decode("compute_class"), gpuSeries: try row.decode("gpu_series"),
                        region: try row.decode("region"), allocations: try row.decode("allocations"),
                        replicas: try row.decode("replicas"), oldestWaitSeconds: try row.decode("oldest"))
                }
            }
        }
    }
}
