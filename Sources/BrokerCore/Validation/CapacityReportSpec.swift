import Foundation
import JSON

/// `POST /v1/admin/reports`: what a region's agent (or an admin) saw happen to capacity.
/// `interrupted` and `failedToStart` name lost `instances`; `outOfStock` names a pool
/// (`region`, `poolId`) that offers at most `available` (default 0) for `coolDownSeconds`.
/// `id` is the agent's own: a report sent again with the same id is answered as the first.
public struct CapacityReport: Codable, Sendable, Equatable {
    public var id: String
    public var kind: CapacityReportKind
    public var instances: [UUID]
    public var region: String?
    public var poolId: String?
    public var available: Int?
    public var coolDownSeconds: Int?
    public var reason: String

    public static let maxInstances = 1000
    public static let maxCoolDownSeconds = 86_400

    public init(
        id: String, kind: CapacityReportKind, instances: [UUID] = [], region: String? = nil, poolId: String? = nil,
        available: Int? = nil, coolDownSeconds: Int? = nil, reason: String = ""
    ) {
        self.id = id
        self.kind = kind
        self.instances = instances
        self.region = region
        self.poolId = poolId
        self.available = available
        self.coolDownSeconds = coolDownSeconds
        self.reason = reason
    }

    public static func parse(_ json: JSONValue) throws(ValidationFailure) -> CapacityReport {
        let errors = FieldErrorCollector()
        var result: CapacityReport?
        if let r = errors.object(json) {
            let id = r.string("id", required: true, maxLength: 128)
            let kind = r.enumeration("kind", CapacityReportKind.self, required: true)
            let reason = r.string("reason", allowEmpty: true, maxLength: 500) ?? ""
            var report: CapacityReport?
            switch kind {
            case .interrupted?, .failedToStart?:
                let raw = r.stringArray("instances", required: true, maxItems: maxInstances, itemMaxLength: 36)
                var ids: [UUID] = []
                for (n, text) in (raw ?? []).enumerated() {
                    if let uuid = UUID(uuidString: text) { ids.append(uuid) } else {
                        errors.add(FieldPath.index(r.field("instances"), n), "must be an instance id (a UUID)")
                    }
                }
                for key in ["region", "poolId", "available", "coolDownSeconds"] where r.present(key) {
                    errors.add(r.field(key), "is for outOfStock reports only")
                }
                if let id, let kind { report = CapacityReport(id: id, kind: kind, instances: ids, reason: reason) }
            case .outOfStock?:
                let region = r.string("region", required: true)
                let poolId = r.string("poolId", required: true)
                let available = r.integer("available", in: 0...100_000_000) ?? 0
                let coolDown = r.integer("coolDownSeconds", required: true, in: 1...maxCoolDownSeconds)
                if r.present("instances") { errors.add(r.field("instances"), "is for interrupted and failedToStart reports only") }
                if let id, let region, let poolId, let coolDown {
                    report = CapacityReport(
                        id: id, kind: .outOfStock, region: region, poolId: poolId, available: available,
                        coolDownSeconds: coolDown, reason: reason)
                }
            case nil:
                break
            }
            r.allow("instances", "region", "poolId", "available", "coolDownSeconds")
            r.finish()
            result = report
        }
        return try errors.result(result)
    }
}

/// The answer to a report, kept and answered again for its id.
public struct CapacityReportAnswer: Codable, Sendable, Equatable {
    public var id: String
    public var kind: CapacityReportKind
    public var receivedAt: Date
    /// Instances the report took out of service.
    public var stopped: [ResourceID]?
    /// Instances already out of service (reported before, released, preempted): nothing more is counted.
    public var alreadyStopped: [ResourceID]?
    /// `outOfStock`: until when the pool offers at most `available`.
    public var coolDownUntil: Date?

    public init(
        id: String, kind: CapacityReportKind, receivedAt: Date, stopped: [ResourceID]? = nil, alreadyStopped: [ResourceID]? = nil,
        coolDownUntil: Date? = nil
    ) {
        self.id = id
        self.kind = kind
        self.receivedAt = receivedAt
        self.stopped = stopped
        self.alreadyStopped = alreadyStopped
        self.coolDownUntil = coolDownUntil
    }
}

/// A pool's stock-out as the inventory shows it: what it offers until when, and why.
public struct PoolStockOut: Codable, Sendable, Equatable {
    public var available: Int
    /// The capacity it returns to (the last inventory report's).
    public var reportedCapacity: Int
    public var until: Date
    public var reason: String
    public var reportId: String

    public init(available: Int, reportedCapacity: Int, until: Date, reason: String, reportId: String) {
        self.available = available
        self.reportedCapacity = reportedCapacity
        self.until = until
        self.reason = reason
        self.reportId = reportId
    }
}
