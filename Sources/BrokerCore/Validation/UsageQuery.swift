import Foundation
import JSON

/// What a usage report may be grouped by. Grouping by pool groups by its region too:
/// pool ids are unique only within a region.
public enum UsageGrouping: String, CaseIterable, Sendable {
    case region, pool, gpuSeries, qos, day, tenant
}

/// `GET /v1/usage?from&to&groupBy=` (and `/v1/admin/usage`, which may add `tenant`):
/// the window and the grouping of a usage report.
public struct UsageQuery: Sendable, Equatable {
    /// Start of the window; default the start of the current calendar month (UTC).
    public var from: Date
    /// End of the window; nil = now. A later `to` counts only up to now.
    public var to: Date?
    public var groupBy: [UsageGrouping]
    /// Admin only: one tenant's usage.
    public var tenantId: UUID?

    public init(from: Date, to: Date? = nil, groupBy: [UsageGrouping] = [], tenantId: UUID? = nil) {
        self.from = from
        self.to = to
        self.groupBy = groupBy
        self.tenantId = tenantId
    }

    /// Field paths are the parameter names; unknown parameters are errors, and so is
    /// `tenant` unless `allowsTenant` (a tenant reads only its own usage).
    public static func parse(
        _ parameters: [String: String], now: Date, allowsTenant: Bool
    ) throws(ValidationFailure) -> UsageQuery {
        let errors = FieldErrorCollector()
        let r = ObjectReader(path: "", members: parameters.mapValues(JSONValue.string), errors: errors, coerceStrings: true)
        let from = r.string("from", maxLength: 64).flatMap { timestamp($0, field: "from", errors) }
        let to = r.string("to", maxLength: 64).flatMap { timestamp($0, field: "to", errors) }
        var groupBy: [UsageGrouping] = []
        if let list = r.string("groupBy", allowEmpty: true, maxLength: 256), !list.isEmpty {
            for item in list.split(separator: ",", omittingEmptySubsequences: false) {
                let name = item.trimmingCharacters(in: .whitespaces)
                guard let grouping = UsageGrouping(rawValue: name) else {
                    errors.add("groupBy", "'\(name)' is not one of \(UsageGrouping.allCases.map(\.rawValue).joined(separator: ", "))")
                    continue
                }
                if groupBy.contains(grouping) {
                    errors.add("groupBy", "'\(name)' is listed twice")
                } else {
                    groupBy.append(grouping)
                }
            }
        }
        var tenantId: UUID?
        if allowsTenant, let tenant = r.string("tenant", maxLength: 64) {
            tenantId = UUID(uuidString: tenant)
            if tenantId == nil { errors.add("tenant", "must be a tenant id (a UUID)") }
        }
        r.finish()
        let start = from ?? monthStart(of: now)
        guard errors.isEmpty else { throw ValidationFailure(errors: errors.errors) }
        return UsageQuery(from: start, to: to, groupBy: groupBy, tenantId: tenantId)
    }

    /// Midnight UTC on the first day of `date`'s month.
    public static func monthStart(of date: Date) -> Date {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .gmt
        return calendar.date(from: calendar.dateComponents([.year, .month], from: date))!
    }

    /// RFC 3339 with or without fractional seconds (`t` and `z` in either case), or a
    /// date (midnight UTC). Kept within 1970...9999: no usage lies outside, and the
    /// database takes no year 0.
    static func timestamp(_ text: String, field: String, _ errors: FieldErrorCollector) -> Date? {
        let text = text.uppercased()
        let parsed = (try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
            ?? (try? Date(text, strategy: Date.ISO8601FormatStyle()))
            ?? (try? Date(text, strategy: Date.ISO8601FormatStyle(timeZone: .gmt).year().month().day()))
        guard let parsed else {
            errors.add(field, "must be an RFC 3339 timestamp (2026-11-01T00:00:00Z) or a date (2026-11-01)")
            return nil
        }
        return min(max(parsed, earliest), latest)
    }

    static let earliest = Date(timeIntervalSince1970: 0)
    static let latest = Date(timeIntervalSince1970: 253_402_300_799)  // 9999-12-31T23:59:59Z
}
