import BrokerCore
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
import JSON
#endif

/// A replica shape to ask `GET /v1/inventory` about.
public struct ShapeQuery: Sendable, Equatable {
    public var computeClass: String
    public var gpuSeries: [String] = []
    public var gpuCount: Int?
    public var cpu: Double
    public var memoryGiB: Double
    public var qos: String?

    public init(computeClass: String, gpuSeries: [String] = [], gpuCount: Int? = nil, cpu: Double, memoryGiB: Double, qos: String? = nil) {
        self.computeClass = computeClass
        self.gpuSeries = gpuSeries
        self.gpuCount = gpuCount
        self.cpu = cpu
        self.memoryGiB = memoryGiB
        self.qos = qos
    }

    var queryItems: [URLQueryItem] {
        var items = [URLQueryItem(name: "computeClass", value: computeClass)]
        if !gpuSeries.isEmpty { items.append(URLQueryItem(name: "gpuSeries", value: gpuSeries.joined(separator: ","))) }
        if let gpuCount { items.append(URLQueryItem(name: "gpuCount", value: String(gpuCount))) }
        items.append(URLQueryItem(name: "cpu", value: JSONValue.number(cpu).jsonText))
        items.append(URLQueryItem(name: "memoryGiB", value: JSONValue.number(memoryGiB).jsonText))
        if let qos { items.append(URLQueryItem(name: "qos", value: qos)) }
        return items
    }
}

/// The body of `POST /v1/allocations`; fields left nil take the broker's defaults.
public struct AllocationSpec: Sendable, Equatable {
    public var computeClass: String
    public var qos: String?
    public var gpuSeries: [String] = []
    public var gpuCount: Int?
    public var cpu: Double
    public var memoryGiB: Double
    public var replicas: Int
    public var region: String?
    public var instanceType: String?
    public var placement: JSONValue?
    public var allOrNothing: Bool?
    public var leaseSeconds: Int?
    public var queue: Bool?
    public var queueTimeoutSeconds: Int?
    public var labels: [String: String] = [:]

    public init(computeClass: String, cpu: Double, memoryGiB: Double, replicas: Int) {
        self.computeClass = computeClass
        self.cpu = cpu
        self.memoryGiB = memoryGiB
        self.replicas = replicas
    }

    public var json: JSONValue {
        var body: [String: JSONValue] = [
            "computeClass": .string(computeClass), "cpu": .number(cpu), "memoryGiB": .number(memoryGiB),
            "replicas": .number(Double(replicas)),
        ]
        if let qos { body["qos"] = .string(qos) }
        if !gpuSeries.isEmpty { body["gpuSeries"] = .array(gpuSeries.map(JSONValue.string)) }
        if let gpuCount { body["gpuCount"] = .number(Double(gpuCount)) }
        if let region { body["region"] = .string(region) }
        if let instanceType { body["instanceType"] = .string(instanceType) }
        if let placement { body["placement"] = placement }
        if let allOrNothing { body["allOrNothing"] = .bool(allOrNothing) }
        if let leaseSeconds { body["leaseSeconds"] = .number(Double(leaseSeconds)) }
        if let queue { body["queue"] = .bool(queue) }
        if let queueTimeoutSeconds { body["queueTimeoutSeconds"] = .number(Double(queueTimeoutSeconds)) }
        if !labels.isEmpty { body["labels"] = .object(labels.mapValues(JSONValue.string)) }
        return .object(body)
    }
}

/// One endpoint per method, each answering the broker's JSON document.
extension BrokerClient {
    // MARK: regions and inventory

    /// Every region, all pages in one answer.
    public func regions() async throws -> JSONValue {
        try await allPages("/v1/regions", "regions")
    }

    public func region(_ id: String) async throws -> JSONValue {
        try await send("GET", "/v1/regions/\(Self.segment(id))", retry: true).body
    }

    public func regionInventory(_ id: String) async throws -> JSONValue {
        try await send("GET", "/v1/regions/\(Self.segment(id))/inventory", retry: true).body
    }

    public func inventory(_ shape: ShapeQuery) async throws -> JSONValue {
        try await send("GET", "/v1/inventory", query: shape.queryItems, retry: true).body
    }

    // MARK: allocations

    /// 201 (`active`, `partial`) or 202 (`pending`). The key makes a retry after a lost answer safe.
    /// `dryRun`: 200 with what the request would do (a `DryRun`), nothing kept.
    public func createAllocation(
        _ spec: AllocationSpec, idempotencyKey: String = UUID().uuidString, dryRun: Bool = false
    ) async throws -> JSONValue {
        try await send(
            "POST", "/v1/allocations", query: Self.dryRun(dryRun), json: spec.json,
            headers: ["Idempotency-Key": idempotencyKey], retry: true
        ).body
    }

    /// `dryRun=true`, when asked for.
    static func dryRun(_ asked: Bool) -> [URLQueryItem] {
        asked ? [URLQueryItem(name: "dryRun", value: "true")] : []
    }

    /// Whose allocations a call reads or changes: the token's tenant's, or (admin token) any
    /// tenant's through `/v1/admin/allocations`, optionally listing one tenant's.
    public enum AllocationScope: Sendable {
        case tenant
        case admin(tenant: String?)

        var path: String {
            if case .admin = self { return "/v1/admin/allocations" }
            return "/v1/allocations"
        }

        var query: [URLQueryItem] {
            guard case .admin(let tenant?) = self else { return [] }
            return [URLQueryItem(name: "tenant", value: tenant)]
        }
    }

    /// Every allocation with these filters, newest first, all pages in one answer.
    public func allAllocations(status: String? = nil, region: String? = nil, scope: AllocationScope = .tenant) async throws -> JSONValue {
        try await allPages(scope.path, "allocations", query: Self.filters(status: status, region: region) + scope.query)
    }

    /// One page; `cursor` is the previous page's `nextCursor`.
    public func allocations(
        limit: Int? = nil, cursor: String? = nil, status: String? = nil, region: String? = nil, scope: AllocationScope = .tenant
    ) async throws -> JSONValue {
        var query: [URLQueryItem] = []
        if let limit { query.append(URLQueryItem(name: "limit", value: String(limit))) }
        if let cursor { query.append(URLQueryItem(name: "cursor", value: cursor)) }
        return try await send(
            "GET", scope.path, query: query + Self.filters(status: status, region: region) + scope.query, retry: true
        ).body
    }

    static func filters(status: String?, region: String?) -> [URLQueryItem] {
        [status.map { URLQueryItem(name: "status", value: $0) }, region.map { URLQueryItem(name: "region", value: $0) }]
            .compactMap { $0 }
    }

    /// Every page of a list as one answer (`nextCursor` null); `key` names its items.
    func allPages(_ path: String, _ key: String, query: [URLQueryItem] = []) async throws -> JSONValue {
        var items: [JSONValue] = []
        var cursor: String? = nil
        repeat {
            let paging = [URLQueryItem(name: "limit", value: "100")] + (cursor.map { [URLQueryItem(name: "cursor", value: $0)] } ?? [])
            let page = try await send("GET", path, query: query + paging, retry: true).body
            items += page[key]?.arrayValue ?? []
            cursor = page["nextCursor"]?.stringValue
        } while cursor != nil
        return .object([key: .array(items), "nextCursor": .null])
    }

    public func allocation(_ id: String, scope: AllocationScope = .tenant) async throws -> JSONValue {
        try await send("GET", "\(scope.path)/\(Self.segment(id))", retry: true).body
    }

    public func scale(_ id: String, replicas: Int, scope: AllocationScope = .tenant, dryRun: Bool = false) async throws -> JSONValue {
        try await send(
            "PATCH", "\(scope.path)/\(Self.segment(id))", query: Self.dryRun(dryRun),
            json: .object(["replicas": .number(Double(replicas))])
        ).body
    }

    public func renew(
        _ id: String, leaseSeconds: Int? = nil, scope: AllocationScope = .tenant, dryRun: Bool = false
    ) async throws -> JSONValue {
        let body: JSONValue = .object(leaseSeconds.map { ["leaseSeconds": .number(Double($0))] } ?? [:])
        return try await send("POST", "\(scope.path)/\(Self.segment(id))/renew", query: Self.dryRun(dryRun), json: body).body
    }

    public func release(_ id: String, scope: AllocationScope = .tenant) async throws -> JSONValue {
        try await send("DELETE", "\(scope.path)/\(Self.segment(id))").body
    }

    public func events(_ id: String, scope: AllocationScope = .tenant) async throws -> JSONValue {
        try await send("GET", "\(scope.path)/\(Self.segment(id))/events", retry: true).body
    }

    /// A full allocation id for `id`: itself when it is one, else the one allocation whose
    /// id starts or ends with it (the console shows the last 8 digits), at least 4 hex digits,
    /// found in the list of the scope's allocations.
    public func resolveAllocationId(_ id: String, scope: AllocationScope = .tenant) async throws -> String {
        let short = id.lowercased()
        guard UUID(uuidString: id) == nil, short.count >= 4, short.allSatisfy({ $0.isHexDigit || $0 == "-" }) else { return id }
        let ids = (try await allAllocations(scope: scope)["allocations"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
        let matches = ids.filter { $0.hasPrefix(short) || $0.hasSuffix(short) }
        guard matches.count == 1 else {
            throw ClientError.unresolved(
                matches.isEmpty ? "no allocation id starts or ends with '\(id)'"
                    : "'\(id)' names \(matches.count) allocations (\(matches.prefix(5).joined(separator: ", "))): give more digits")
        }
        return matches[0]
    }

    /// Where a pending allocation stands in the queue.
    public func queuePosition(_ id: String) async throws -> JSONValue {
        try await send("GET", "/v1/allocations/\(Self.segment(id))/queue", retry: true).body
    }

    /// A Kubernetes manifest file as JSON or YAML; the answer holds `allocation`, `allocations`,
    /// `manifests` and `manifestRegions`.
    public func allocate(
        manifest: [UInt8], idempotencyKey: String = UUID().uuidString, dryRun: Bool = false
    ) async throws -> JSONValue {
        let isJSON = manifest.first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) } == UInt8(ascii: "{")
        let body = RawBody(bytes: manifest, contentType: isJSON ? "application/json" : "application/yaml")
        return try await send(
            "POST", "/v1/allocations/from-manifest", query: Self.dryRun(dryRun), raw: body,
            headers: ["Idempotency-Key": idempotencyKey], retry: true
        ).body
    }

    public func policy(_ name: String) async throws -> JSONValue {
        try await send("GET", "/v1/policies/\(Self.segment(name))", retry: true).body
    }

    /// Stores a named policy: the broker's shape or a policy object as written.
    public func putPolicy(_ name: String, _ body: JSONValue) async throws -> JSONValue {
        try await send("PUT", "/v1/policies/\(Self.segment(name))", json: body, retry: true).body
    }

    // MARK: admin

    public func createRegion(_ body: JSONValue) async throws -> JSONValue {
        try await send("POST", "/v1/admin/regions", json: body).body
    }

    public func replaceRegion(_ id: String, _ body: JSONValue) async throws -> JSONValue {
        try await send("PUT", "/v1/admin/regions/\(Self.segment(id))", json: body).body
    }

    public func deleteRegion(_ id: String) async throws {
        _ = try await send("DELETE", "/v1/admin/regions/\(Self.segment(id))")
    }

    public func putPool(region: String, pool: String, _ body: JSONValue) async throws -> JSONValue {
        try await send("PUT", "/v1/admin/regions/\(Self.segment(region))/pools/\(Self.segment(pool))", json: body).body
    }

    public func deletePool(region: String, pool: String) async throws {
        _ = try await send("DELETE", "/v1/admin/regions/\(Self.segment(region))/pools/\(Self.segment(pool))")
    }

    /// Every tenant, newest first, all pages in one answer.
    public func tenants() async throws -> JSONValue {
        try await allPages("/v1/admin/tenants", "tenants")
    }

    public func createTenant(_ body: JSONValue) async throws -> JSONValue {
        try await send("POST", "/v1/admin/tenants", json: body).body
    }

    public func updateTenant(_ id: String, _ body: JSONValue) async throws -> JSONValue {
        try await send("PATCH", "/v1/admin/tenants/\(Self.segment(id))", json: body).body
    }

    /// The calling tenant's fair-share report, or with `all` (admin) every tenant's.
    public func shares(all: Bool = false) async throws -> JSONValue {
        try await send("GET", all ? "/v1/admin/shares" : "/v1/shares").body
    }

    public func tenantShare(_ id: String) async throws -> JSONValue {
        try await send("GET", "/v1/admin/tenants/\(Self.segment(id))/share").body
    }

    /// A merge patch of the tenant's share.
    public func patchTenantShare(_ id: String, _ body: JSONValue) async throws -> JSONValue {
        try await send("PATCH", "/v1/admin/tenants/\(Self.segment(id))/share", json: body).body
    }

    public func rotateToken(tenant id: String) async throws -> JSONValue {
        try await send("POST", "/v1/admin/tenants/\(Self.segment(id))/tokens").body
    }

    // MARK: named tokens (tenant-admin)

    public func tokens() async throws -> JSONValue {
        try await send("GET", "/v1/tokens", retry: true).body
    }

    public func createToken(_ body: JSONValue) async throws -> JSONValue {
        try await send("POST", "/v1/tokens", json: body).body
    }

    public func revokeToken(_ id: String) async throws {
        _ = try await send("DELETE", "/v1/tokens/\(Self.segment(id))")
    }
}

/// Who the token is, named policies and webhook endpoints: the tenant's own (the admin's own endpoints with the admin token).
extension BrokerClient {
    /// Who the token is: `{"role": "admin"}` or `{"role": "tenant", "tenant": {...}}`.
    public func whoami() async throws -> JSONValue {
        try await send("GET", "/v1/whoami", retry: true).body
    }

    /// Events asked for per page of the feed.
    public static let eventPageSize = 100

    /// One page of the event feed after `after` (from the start without it).
    public func eventPage(after: String?) async throws -> JSONValue {
        var query = [URLQueryItem(name: "limit", value: String(Self.eventPageSize))]
        if let after { query.append(URLQueryItem(name: "after", value: after)) }
        return try await send("GET", "/v1/events", query: query, retry: true).body
    }

    /// The usage report: the tenant's own, or (admin) everyone's or one tenant's.
    public func usage(from: String?, to: String?, groupBy: [String], admin: Bool, tenant: String?) async throws -> JSONValue {
        var query: [URLQueryItem] = []
        if let from { query.append(URLQueryItem(name: "from", value: from)) }
        if let to { query.append(URLQueryItem(name: "to", value: to)) }
        if !groupBy.isEmpty { query.append(URLQueryItem(name: "groupBy", value: groupBy.joined(separator: ","))) }
        if let tenant { query.append(URLQueryItem(name: "tenant", value: tenant)) }
        return try await send("GET", admin ? "/v1/admin/usage" : "/v1/usage", query: query, retry: true).body
    }

    public func policies() async throws -> JSONValue {
        try await send("GET", "/v1/policies", retry: true).body
    }

    public func deletePolicy(_ name: String) async throws {
        _ = try await send("DELETE", "/v1/policies/\(Self.segment(name))")
    }

    public func webhooks() async throws -> JSONValue {
        try await send("GET", "/v1/webhooks", retry: true).body
    }

    /// Registers an endpoint; the answer holds its `secret`, shown this once.
    public func createWebhook(url: String, eventTypes: [String]) async throws -> JSONValue {
        try await send("POST", "/v1/webhooks", json: .object(["url": .string(url), "eventTypes": .array(eventTypes.map(JSONValue.string))])).body
    }

    public func deleteWebhook(_ id: String) async throws {
        _ = try await send("DELETE", "/v1/webhooks/\(Self.segment(id))")
    }

    public func webhookDeliveries(_ id: String) async throws -> JSONValue {
        try await send("GET", "/v1/webhooks/\(Self.segment(id))/deliveries", retry: true).body
    }
}
