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

    /// The JSON names of the limits, as in the API.
    public static let limitNames = ["gpus", "cpu", "memoryGiB", "instances", "spendPerMonth", "gpuHoursPerMonth"]
}

/// `POST /v1/admin/tenants` `{"name", "quota"?}` and `PATCH /v1/admin/tenants/{id}` (all optional).
/// A patch's `quota` is a JSON merge patch (RFC 7396): the limits given change, a limit given as
/// null becomes unlimited, the limits left out keep their values.
public struct TenantSpec: Codable, Sendable, Equatable {
    public var name: String?
    public var quota: TenantQuota?
    /// Patch only: the limits given as null, removed from the quota.
    public var removedLimits: [String]

    public init(name: String? = nil, quota: TenantQuota? = nil, removedLimits: [String] = []) {
        self.name = name
        self.quota = quota
        self.removedLimits = removedLimits
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
        let nullable = !nameRequired
        if let r = errors.object(json) {
            let name = r.string("name", required: nameRequired, maxLength: maxNameLength)
            if let name, name.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                errors.add(r.field("name"), "must not be blank")
            }
            var quota: TenantQuota?
            var removed: [String] = []
            if let q = r.object("quota") {
                quota = TenantQuota(
                    gpus: q.integer("gpus", nullable: nullable, in: 0...100_000_000),
                    cpu: q.number("cpu", nullable: nullable, minimum: 0, maximum: 1e12),
                    memoryGiB: q.number("memoryGiB", nullable: nullable, minimum: 0, maximum: 1e12),
                    instances: q.integer("instances", nullable: nullable, in: 0...100_000_000),
                    spendPerMonth: q.number("spendPerMonth", nullable: nullable, minimum: 0, maximum: 1e12),
                    gpuHoursPerMonth: q.number("gpuHoursPerMonth", nullable: nullable, minimum: 0, maximum: 1e12))
                removed = TenantQuota.limitNames.filter { json["quota"]?[$0] == .null }
                q.finish()
            }
            r.finish()
            result = TenantSpec(name: name, quota: quota, removedLimits: removed)
        }
        return try errors.result(result)
    }
}
