import Foundation
import JSON

/// A tenant's named placement policy (`PUT /v1/policies/{name}`): used for requests
/// without `placement` or `region` whose labels match `selector` (an empty selector
/// matches every request).
public struct NamedPolicy: Codable, Sendable, Equatable {
    public var name: String
    public var selector: [String: String]
    public var policy: PlacementPolicy

    public init(name: String, selector: [String: String] = [:], policy: PlacementPolicy) {
        self.name = name
        self.selector = selector
        self.policy = policy
    }

    /// Whether every selector label is among `labels` with the same value.
    public func matches(labels: [String: String]) -> Bool {
        selector.allSatisfy { labels[$0.key] == $0.value }
    }
}

/// Parses `PUT /v1/policies/{name}`: `{"selector"?: {label: value}, "strategy"?, "units"}`.
public enum PolicySpec {
    public static func parse(_ json: JSONValue, name: String) throws(ValidationFailure) -> NamedPolicy {
        let errors = FieldErrorCollector()
        if !Rules.isPolicyName(name) {
            errors.add("name", "must match \(Rules.policyNamePattern)")
        }
        var result: NamedPolicy?
        if let reader = errors.object(json) {
            if let bodyName = reader.string("name", maxLength: nil), bodyName != name {
                errors.add("name", "must equal the name in the path")
            }
            let selector = reader.labels("selector") ?? [:]
            let policy = PlacementSpec.readPolicy(reader, unitsRequired: true)
            reader.finish()
            if let policy { result = NamedPolicy(name: name, selector: selector, policy: policy) }
        }
        return try errors.result(result)
    }
}

/// Placement policies as they appear in requests and named policies:
/// `{"strategy": "prefer"|"spread", "units": [{"regions"?: [id | "*"], "selector"?: {"kind"?, "labels"?}, "max"?, "weight"?}]}`.
public enum PlacementSpec {
    public static let maxUnits = 16
    public static let maxUnitReplicas = 1_000_000
    /// Largest static weight: shares are computed as weight × replicas without overflow.
    public static let maxWeight = 10_000
    /// Largest `maxPricePerHour` accepted.
    public static let maxPrice = 1_000_000_000.0

    /// A standalone placement object (`{"strategy"?, "units"}`).
    public static func parse(_ json: JSONValue) throws(ValidationFailure) -> PlacementPolicy {
        let errors = FieldErrorCollector()
        var result: PlacementPolicy?
        if let reader = errors.object(json) {
            result = readPolicy(reader, unitsRequired: true)
            reader.finish()
        }
        return try errors.result(result)
    }

    /// Reads `strategy` and `units` from `reader` (the caller finishes it).
    static func readPolicy(_ reader: ObjectReader, unitsRequired: Bool) -> PlacementPolicy? {
        let strategyGiven = reader.present("strategy")
        let strategy = reader.enumeration("strategy", PlacementStrategy.self)
        let strategyOK = !strategyGiven || strategy != nil
        let priceGiven = reader.present("maxPricePerHour")
        let maxPricePerHour = reader.number("maxPricePerHour", minimum: 0, maximum: maxPrice)
        let recover = reader.bool("recover")
        // `cheapest` alone orders every region by price: it needs no units.
        let required = unitsRequired && strategy != .cheapest
        let items: [(path: String, value: JSONValue)]
        if let given = reader.array("units", required: required, maxItems: maxUnits) {
            items = given
        } else if !required && !reader.present("units") {
            items = []
        } else {
            return nil
        }
        guard !priceGiven || maxPricePerHour != nil else { return nil }
        var units: [PlacementUnit] = []
        var ok = true
        for (path, item) in items {
            if let unit = readUnit(item, at: path, errors: reader.errors) {
                units.append(unit)
            } else {
                ok = false
            }
        }
        guard ok, strategyOK else { return nil }
        let weighted = units.filter { $0.weight != nil }.count
        if weighted > 0 && (strategy != .spread || weighted != units.count) {
            reader.errors.add(reader.field("units"), "weight divides a spread: give every unit a weight and strategy spread")
            return nil
        }
        return PlacementPolicy(
            strategy: strategy ?? .prefer, units: units, maxPricePerHour: maxPricePerHour, recover: recover)
    }

    static func readUnit(_ value: JSONValue, at path: String, errors: FieldErrorCollector) -> PlacementUnit? {
        guard let unit = errors.object(value, at: path) else { return nil }
        let errorCount = errors.errors.count
        let regionsGiven = unit.present("regions")
        let regions = unit.stringArray(
            "regions", maxItems: 256, itemMaxLength: 63,
            pattern: FieldPattern("a region id (\(Rules.regionIdPattern)) or \"*\"") { $0 == "*" || Rules.isRegionId($0) })
        let selectorGiven = unit.present("selector")
        var selector: RegionSelector?
        if let reader = unit.object("selector") {
            let kind = reader.enumeration("kind", RegionKind.self)
            let labels = reader.labels("labels") ?? [:]
            reader.finish()
            selector = RegionSelector(kind: kind, labels: labels)
        }
        let max = unit.integer("max", in: 1...maxUnitReplicas)
        let weight = unit.integer("weight", in: 1...maxWeight)
        unit.finish()
        if !regionsGiven && !selectorGiven {
            errors.add(path, "must have regions or selector")
        }
        guard errors.errors.count == errorCount else { return nil }
        return PlacementUnit(regions: regions, selector: selector, max: max, weight: weight)
    }
}
