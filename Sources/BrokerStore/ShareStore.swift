import BrokerCore
import Foundation
import PostgresClient

/// Tenants' fair shares (migration 16): the admin's settings, and what every tenant holds
/// against them, read in one snapshot for the pending admitter, queue positions and
/// `GET /v1/shares`.
public struct ShareStore: Sendable {
    let pool: PostgresPool

    public init(sharingPoolOf tenants: TenantStore) {
        pool = tenants.pool
    }

    public func get(tenantId: UUID) async throws -> TenantShare {
        try await StoreError.translating {
            try await pool.withConnection { c in
                guard try !c.query("SELECT 1 FROM tenants WHERE id = $1", [tenantId]).isEmpty else {
                    throw StoreError.notFound("tenant '\(tenantId.lowercased)' not found")
                }
                return try Self.shares(c, tenant: tenantId)[tenantId.lowercased] ?? TenantShare()
            }
        }
    }

    /// Replaces the tenant's share with `change(current)`. Changes are serialised, so two
    /// admins raising guarantees at once cannot together promise more than the pools hold:
    /// a guarantee raised beyond what the pools of active regions hold, counting every
    /// tenant's guarantee of that resource, is refused with the numbers.
    public func update(
        tenantId: UUID, _ change: @escaping @Sendable (TenantShare) throws -> TenantShare
    ) async throws -> TenantShare {
        try await StoreError.translating {
            try await pool.withTransaction { c in
                try c.query("SELECT pg_advisory_xact_lock(hashtext('gpubroker.tenant_shares'))")
                guard try !c.query("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", [tenantId]).isEmpty else {
                    throw StoreError.notFound("tenant '\(tenantId.lowercased)' not found")
                }
                let current = try Self.shares(c, tenant: tenantId)[tenantId.lowercased] ?? TenantShare()
                let next = try change(current)
                try c.query("UPDATE tenants SET cohort = $2, updated_at = now() WHERE id = $1", [tenantId, next.cohort])
                try c.query("DELETE FROM tenant_shares WHERE tenant_id = $1", [tenantId])
                try c.query(
                    """
                    INSERT INTO tenant_shares (tenant_id, resource, guaranteed, weight, borrowing_limit, lending_limit)
                    SELECT $1, key, (value->>'guaranteed')::float8, (value->>'weight')::float8,
                           (value->>'borrowingLimit')::float8, (value->>'lendingLimit')::float8
                    FROM jsonb_each($2::jsonb)
                    """,
                    [tenantId, try PostgresJSON(next.resources)])
                let raised = next.resources.keys.sorted().filter { next.share(of: $0).guaranteed > current.share(of: $0).guaranteed }
                try Self.checkGuarantees(c, raised: raised, cohort: next.cohort)
                return next
            }
        }
    }

    private static func checkGuarantees(_ c: PostgresConnection, raised: [String], cohort: String?) throws {
        if raised.isEmpty { return }
        let capacity = try Self.capacity(c)
        for row in try c.query(
            """
            SELECT s.resource, sum(s.guaranteed)::float8 AS total,
                   coalesce(sum(s.guaranteed) FILTER (WHERE t.cohort IS NOT DISTINCT FROM $2), 0)::float8 AS in_cohort
            FROM tenant_shares s JOIN tenants t ON t.id = s.tenant_id
            WHERE s.resource = ANY($1::text[]) GROUP BY s.resource ORDER BY s.resource
            """, [raised, cohort])
        {
            let resource: String = try row.decode("resource")
            let total: Double = try row.decode("total")
            let held = capacity[resource] ?? 0
            guard total > held else { continue }
            let inCohort: Double = try row.decode("in_cohort")
            let unit = ShareResource.unit(resource)
            let name = cohort.map { "cohort '\($0)'" } ?? "tenants without a cohort"
            throw StoreError.conflict(
                "guarantees of \(resource) would total \(Self.amount(total)) \(unit) (\(name): \(Self.amount(inCohort)), "
                    + "other cohorts: \(Self.amount(total - inCohort))), but the pools of active regions hold "
                    + "\(Self.amount(held)) \(unit)")
        }
    }

    static func amount(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(format: "%.2f", value)
    }

    // MARK: reads shared with the admitter and queue positions

    /// Every tenant with a cohort or a share, by tenant id (lowercase); `tenant` narrows to one.
    static func shares(_ c: PostgresConnection, tenant: UUID? = nil) throws -> [String: TenantShare] {
        var result: [String: TenantShare] = [:]
        for row in try c.query(
            """
            SELECT t.id::text AS tenant, t.cohort, s.resource, s.guaranteed, s.weight, s.borrowing_limit, s.lending_limit
            FROM tenants t LEFT JOIN tenant_shares s ON s.tenant_id = t.id
            WHERE (t.cohort IS NOT NULL OR s.tenant_id IS NOT NULL) AND ($1::uuid IS NULL OR t.id = $1)
            """, [tenant])
        {
            let id: String = try row.decode("tenant")
            var share = try result[id] ?? TenantShare(cohort: row.decodeIfPresent("cohort"))
            if let resource = try row.decodeIfPresent("resource", as: String.self) {
                share.resources[resource] = ResourceShare(
                    guaranteed: try row.decode("guaranteed"), weight: try row.decode("weight"),
                    borrowingLimit: try row.decodeIfPresent("borrowing_limit"),
                    lendingLimit: try row.decodeIfPresent("lending_limit"))
            }
            result[id] = share
        }
        return result
    }

    /// What the pools of active regions hold of each resource.
    static func capacity(_ c: PostgresConnection) throws -> [String: Double] {
        var capacity: [String: Double] = [:]
        for row in try c.query(
            """
            SELECT p.gpu_series, sum(p.capacity * coalesce(p.gpus_per_instance, 0))::float8 AS gpus,
                   sum(p.capacity * p.cpu)::float8 AS cpu, sum(p.capacity * p.memory_gib)::float8 AS memory
            FROM pools p JOIN regions r ON r.id = p.region_id WHERE r.state = 'active' GROUP BY p.gpu_series
            """)
        {
            capacity.add(ShareResource.use(
                gpuSeries: try row.decodeIfPresent("gpu_series"), gpus: try row.decode("gpus"), cpu: try row.decode("cpu"),
                memoryGiB: try row.decode("memory")))
        }
        return capacity
    }

    /// What each tenant's running instances hold, by tenant id; `tenant` narrows to one.
    static func held(_ c: PostgresConnection, tenant: String? = nil) throws -> [String: [String: Double]] {
        var held: [String: [String: Double]] = [:]
        for row in try c.query(
            """
            SELECT a.tenant_id::text AS tenant, i.gpu_series, sum(i.gpu_count)::float8 AS gpus,
                   sum(i.cpu)::float8 AS cpu, sum(i.memory_gib)::float8 AS memory
            FROM allocations a JOIN instances i ON i.allocation_id = a.id
            WHERE a.status IN ('active', 'partial') AND i.state = 'running' AND ($1::uuid IS NULL OR a.tenant_id = $1::uuid)
            GROUP BY 1, 2
            """, [tenant])
        {
            held[try row.decode("tenant"), default: [:]].add(ShareResource.use(
                gpuSeries: try row.decodeIfPresent("gpu_series"), gpus: try row.decode("gpus"), cpu: try row.decode("cpu"),
                memoryGiB: try row.decode("memory")))
        }
        return held
    }

    /// Every tenant's standing that has a share or holds anything, and what the pools hold.
    static func snapshot(_ c: PostgresConnection) throws -> ShareSnapshot {
        let shares = try Self.shares(c)
        let held = try Self.held(c)
        var standings: [String: TenantStanding] = [:]
        for tenant in Set(shares.keys).union(held.keys) {
            standings[tenant] = TenantStanding(tenant: tenant, share: shares[tenant] ?? TenantShare(), held: held[tenant] ?? [:])
        }
        return ShareSnapshot(capacity: try Self.capacity(c), standings: standings)
    }
}

/// Every tenant's standing at one moment.
struct ShareSnapshot: Sendable {
    var capacity: [String: Double]
    var standings: [String: TenantStanding]

    func standing(_ tenant: String) -> TenantStanding { standings[tenant] ?? TenantStanding(tenant: tenant) }

    var dominantShares: [String: Double] { standings.mapValues { $0.dominantShare(capacity: capacity) } }
}
