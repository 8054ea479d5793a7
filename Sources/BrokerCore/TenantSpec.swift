import Foundation
import JSON

/// A tenant's limits over its live allocations, and its monthly budgets (calendar
/// month, UTC: what it spent in the month plus what its live leases commit in it); nil
/// means unlimited.
public struct TenantQuota: Codable, Sendable, Equatable {
    public var gpus: Int?
    public var cpu: Double?
    public var memoryGiB: Double?
    public var instances: Int?
    /// In the currency of the pools' `pricePerHour`.
    public var spendPerMonth: Double?
    /// Hours of each GPU of the tenant's instances.
    public var gpuHoursPerMonth: Double?

    public init(
        gpus: Int? = nil, cpu: Double? = nil, memoryGiB: Double? = nil, instances: Int? = nil,
        spendPerMonth: Double? = nil, gpuHoursPerMonth: Double? = nil
    ) {
        self.gpus = gpus
        self.cpu = cpu
        self.memoryGiB = memoryGiB
        self.instances = instances
        self.spendPerMonth = spendPerMonth
        self.gpuHoursPerMonth = gpuHoursPerMonth
    }
}

/// `POST /v1/admin/tenants` `{"name", "quota"?}` and `PATCH /v1/admin/tenants/{id}` (all optional).
/// A given `quota` replaces the whole quota (members left out become unlimited).
public struct TenantSpec: Codable, Sendable, Equatable {
    public var name: String?
    public var quota: TenantQuota?

    public init(name: String? = nil, quota: TenantQuota? = nil) {
        self.name = name
        self.quota = quota
    }

    public static let maxNameLength = 100

    /// Create: `name` required.
    public static func parse(_ json: JSONValue) throws(ValidationFailure) -> TenantSpec {
        try read(json, nameRequired: true)
    }

    /// Patch: every member optional.
    public static func parsePatch(_ json: JSONValue) throws(ValidationFailure) -> TenantSpec {
        try read(json, nameRequired: false)
    }

    private static func read(_ json: JSONValue, nameRequired: Bool) throws(ValidationFailure) -> TenantSpec {
        let errors = FieldErrorCollector()
        var result: TenantSpec?
        if let r = errors.object(json) {
            let name = r.string("name", required: nameRequired, maxLength: maxNameLength)
            if let name, name.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                errors.add(r.field("name"), "must not be blank")
            }
            var quota: TenantQuota?
            if let q = r.object("quota") {
                quota = TenantQuota(
                    gpus: q.integer("gpus", in: 0...100_000_000),
                    cpu: q.number("cpu", minimum: 0, maximum: 1e12),
                    memoryGiB: q.number("memoryGiB", minimum: 0, maximum: 1e12),
                    instances: q.integer("instances", in: 0...100_000_000),
                    spendPerMonth: q.number("spendPerMonth", minimum: 0, maximum: 1e12),
                    gpuHoursPerMonth: q.number("gpuHoursPerMonth", minimum: 0, maximum: 1e12))
                q.finish()
            }
            r.finish()
            result = TenantSpec(name: name, quota: quota)
        }
        return try errors.result(result)
    }
}
