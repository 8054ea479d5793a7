import BrokerCore
import Foundation
import PostgresClient

/// One group of a usage report: its keys (those grouped by; `gpuSeries` absent for
/// CPU pools) and what it used.
public struct UsageRow: Sendable, Equatable {
    public var keys: [UsageGrouping: String]
    public var instanceHours: Double
    public var gpuHours: Double
    public var cost: Double

    public init(keys: [UsageGrouping: String] = [:], instanceHours: Double = 0, gpuHours: Double = 0, cost: Double = 0) {
        self.keys = keys
        self.instanceHours = instanceHours
        self.gpuHours = gpuHours
        self.cost = cost
    }
}

public struct UsageReport: Sendable {
    public var from: Date
    /// The window's end as counted: the query's `to`, or now when that is later.
    public var to: Date
    public var groupBy: [UsageGrouping]
    public var rows: [UsageRow]

    public var total: UsageRow {
        UsageRow(
            keys: [:], instanceHours: rows.reduce(0) { $0 + $1.instanceHours },
            gpuHours: rows.reduce(0) { $0 + $1.gpuHours }, cost: rows.reduce(0) { $0 + $1.cost })
    }
}

/// Usage and spend from the ledger's charged intervals (`gpb_charged_intervals`,
/// migration 8), priced at the price in force while each instance ran.
public struct UsageStore: Sendable {
    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    /// The SQL expression of each grouping over `gpb_charged_intervals`; grouping by
    /// pool adds its region.
    static func columns(_ grouping: UsageGrouping) -> [(name: String, sql: String)] {
        switch grouping {
        case .region: [("region", "c.region_id")]
        case .pool: [("region", "c.region_id"), ("pool", "c.pool_id")]
        case .gpuSeries: [("gpuSeries", "c.gpu_series")]
        case .qos: [("qos", "c.qos")]
        case .day: [("day", "c.day::text")]
        case .tenant: [("tenant", "c.tenant_id::text")]
        }
    }

    static func columns(_ groupings: [UsageGrouping]) -> [(name: String, sql: String)] {
        var selected: [(name: String, sql: String)] = []
        for grouping in groupings {
            for column in columns(grouping) where !selected.contains(where: { $0.name == column.name }) {
                selected.append(column)
            }
        }
        return selected
    }

    /// The report of `query` for one tenant, or for every tenant (`tenantId` nil and
    /// no tenant in the query).
    public func report(_ query: UsageQuery, tenantId: UUID? = nil) async throws -> UsageReport {
        let selected = Self.columns(query.groupBy)
        let keys = selected.enumerated().map { "\($0.element.sql) AS k\($0.offset)" }
        let groupList = selected.isEmpty ? "" : "GROUP BY " + selected.map(\.sql).joined(separator: ", ")
        let order = selected.isEmpty ? "" : "ORDER BY " + selected.map { "\($0.sql) NULLS FIRST" }.joined(separator: ", ")
        return try await StoreError.translating {
            try await pool.withConnection { c in
                let bounds = try c.query(
                    "SELECT least(coalesce($1::timestamptz, now()), now()) AS upto", [query.to])[0]
                let to: Date = try bounds.decode("upto")
                if to <= query.from {
                    return UsageReport(from: query.from, to: to, groupBy: query.groupBy, rows: [])
                }
                let rows = try c.query(
                    """
                    SELECT \((keys + [
                        "(sum(c.seconds) / 3600)::float8 AS instance_hours",
                        "(sum(c.seconds * c.gpu_count) / 3600)::float8 AS gpu_hours",
                        "sum(c.cost) AS cost",
                    ]).joined(separator: ", "))
                    FROM gpb_charged_intervals($1, $2, $3) c
                    \(groupList) \(order)
                    """,
                    [query.from, to, tenantId ?? query.tenantId])
                return UsageReport(
                    from: query.from, to: to, groupBy: query.groupBy,
                    rows: try rows.compactMap { row in
                        // Without grouping, an empty window still answers one row of nulls.
                        if row.isNull("instance_hours") { return nil }
                        var values: [UsageGrouping: String] = [:]
                        for (offset, column) in selected.enumerated() {
                            guard let grouping = UsageGrouping(rawValue: column.name) else { continue }
                            values[grouping] = try row.decodeIfPresent("k\(offset)")
                        }
                        return UsageRow(
                            keys: values, instanceHours: try row.decode("instance_hours"),
                            gpuHours: try row.decode("gpu_hours"), cost: try row.decode("cost"))
                    })
            }
        }
    }
}
