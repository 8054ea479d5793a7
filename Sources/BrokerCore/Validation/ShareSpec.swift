import JSON

/// `PUT /v1/admin/tenants/{id}/share` (the whole share) and `PATCH` (a JSON merge patch,
/// RFC 7396, as for quotas): `{"cohort", "resources": {"<resource>": {"guaranteed",
/// "weight", "borrowingLimit", "lendingLimit"}}}`. In a patch, members left out keep their
/// values; null resets one (no cohort, guarantee 0, weight 1, no limit) and a resource given
/// as null loses its share. A PUT is the same patch applied to an empty share.
public enum ShareSpec {
    public static let maxResources = 64
    static let maxAmount = 1e9

    public static func apply(_ json: JSONValue, to current: TenantShare) throws(ValidationFailure) -> TenantShare {
        let errors = FieldErrorCollector()
        var result: TenantShare?
        if let r = errors.object(json) {
            var share = current
            if r.present("cohort") {
                share.cohort = r.string("cohort", nullable: true, maxLength: 63, pattern: .policyName)
            }
            if let resources = r.object("resources") {
                for key in resources.members.keys.sorted() {
                    guard ShareResource.isValid(key) else {
                        errors.add(resources.field(key), "is not a resource: gpus, cpu, memoryGiB or gpu:<model>")
                        resources.allow(key)
                        continue
                    }
                    if resources.members[key] == .null {
                        resources.allow(key)
                        share.resources[key] = nil
                    } else if let fields = resources.object(key) {
                        share.resources[key] = patch(share.resources[key] ?? .unset, fields)
                        fields.finish()
                    }
                }
                resources.finish()
                if share.resources.count > maxResources {
                    errors.add(r.field("resources"), "may name at most \(maxResources) resources")
                }
            }
            r.finish()
            result = share
        }
        return try errors.result(result)
    }

    private static func patch(_ current: ResourceShare, _ fields: ObjectReader) -> ResourceShare {
        var share = current
        if fields.present("guaranteed") {
            share.guaranteed = fields.number("guaranteed", nullable: true, minimum: 0, maximum: maxAmount) ?? 0
        }
        if fields.present("weight") {
            share.weight = fields.number("weight", nullable: true, exclusiveMinimum: 0, maximum: 1000) ?? 1
        }
        if fields.present("borrowingLimit") {
            share.borrowingLimit = fields.number("borrowingLimit", nullable: true, minimum: 0, maximum: maxAmount)
        }
        if fields.present("lendingLimit") {
            share.lendingLimit = fields.number("lendingLimit", nullable: true, minimum: 0, maximum: maxAmount)
        }
        return share
    }
}
