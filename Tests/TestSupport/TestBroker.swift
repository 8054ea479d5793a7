import BrokerAPI
import BrokerConsole
import BrokerCore
import BrokerStore
import Foundation
import JSON
import Logging
import MicroHTTP
import PostgresClient
import TestHarness
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A broker on a fresh database, called the way a client calls it: over a real
/// socket (`.socket`, through libmicrohttpd), or in-process (`.inProcess`: the same
/// router and handlers, no socket, no HTTP parsing).
public final class TestBroker: Sendable {
    public enum Transport: Sendable {
        case socket, inProcess
    }

    public let databaseURL: String
    public let pool: PostgresPool
    public let router: Router
    /// nil in-process.
    public let server: HTTPServer?
    let services: BrokerServices
    public let adminToken = "test-admin-token"
    public var baseURL: String { "http://127.0.0.1:\(server?.port ?? 0)" }

    /// `console`: the web console's routes too, as `gpubroker serve` has them.
    /// `connectionLimit`: the server's, for tests that fill it.
    public init(
        databaseURL: String? = nil, rateLimit: RateLimiter.Limit? = nil, console: Bool = false,
        transport: Transport = .socket, limits: ResourceLimits = ResourceLimits(), connectionLimit: Int? = nil,
        openID: OpenIDSignIn? = nil
    ) throws {
        self.databaseURL = try databaseURL ?? TestDatabase.create()
        pool = PostgresPool(configuration: PostgresConfiguration(url: self.databaseURL), size: 8)
        var logger = Logger(label: "test-broker")
        logger.logLevel = .warning
        services = BrokerServices(
            inventory: InventoryStore(pool: pool), tenants: TenantStore(pool: pool),
            allocations: AllocationStore(pool: pool, limits: limits), policies: PolicyStore(pool: pool),
            usage: UsageStore(pool: pool), admin: AdminCredential(token: adminToken), metricsText: { "" },
            readinessProblem: { nil }, logger: logger, rateLimiter: rateLimit.map(RateLimiter.init), limits: limits,
            openID: openID)
        let api = BrokerAPI.router(services: services)
        var router = api
        if console { BrokerConsole.register(on: &router, api: api) }
        self.router = router
        switch transport {
        case .inProcess:
            server = nil
        case .socket:
            var configuration = HTTPServerConfiguration()
            configuration.port = 0
            if let connectionLimit { configuration.connectionLimit = connectionLimit }
            configuration.errorResponder = BrokerAPI.errorResponder
            let server = HTTPServer(configuration: configuration, router: router)
            try server.start()
            self.server = server
        }
    }

    public func stop() async {
        await services.eventHub.close()
        await server?.shutdown()
        await pool.close()
    }

    public struct Response: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: [UInt8]

        public var json: JSONValue { (try? JSONValue.parse(body)) ?? .null }
        public var text: String { String(decoding: body, as: UTF8.self) }
        public func header(_ name: String) -> String? {
            headers.first { $0.key.lowercased() == name.lowercased() }?.value
        }

        /// The body as a typed value: an API answer (`AllocationView`, `Answers.Problem`, ...).
        /// Fails on a missing or mistyped field, where reading untyped JSON would see nil.
        public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
            do {
                return try Self.decoder.decode(T.self, from: Data(body))
            } catch {
                throw TestSetupError("a \(status) answer is not a \(T.self): \(error)\n\(text)")
            }
        }

        private static let decoder: JSONDecoder = {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .custom { decoder in
                let text = try decoder.singleValueContainer().decode(String.self)
                if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
                return try Date.ISO8601FormatStyle().parse(text)
            }
            return decoder
        }()
    }

    /// Sends one request. `json` is encoded as the body with a JSON content type.
    public func call(
        _ method: String, _ path: String, token: String? = nil, json: JSONValue? = nil, body: [UInt8]? = nil,
        headers: [String: String] = [:]
    ) async throws -> Response {
        var fields = headers
        if let token { fields["Authorization"] = "Bearer \(token)" }
        if json != nil { fields["Content-Type"] = "application/json" }
        let payload = json.map { $0.encoded() } ?? body
        if server == nil { return await callInProcess(method, path, headers: fields, body: payload ?? []) }
        var request = URLRequest(url: URL(string: baseURL + path)!)
        request.httpMethod = method
        request.timeoutInterval = 30
        if let payload { request.httpBody = Data(payload) }
        for (name, value) in fields { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        var headerMap: [String: String] = [:]
        for (key, value) in http.allHeaderFields { headerMap["\(key)"] = "\(value)" }
        return Response(status: http.statusCode, headers: headerMap, body: Array(data))
    }

    /// The request as the server would hand it to the router: path percent-decoded,
    /// query split (the last value of a repeated name wins, a bare name is "").
    private func callInProcess(
        _ method: String, _ target: String, headers: [String: String], body: [UInt8]
    ) async -> Response {
        let components = URLComponents(string: target)
        var query: [String: String] = [:]
        for item in components?.queryItems ?? [] { query[item.name] = item.value ?? "" }
        let path = components?.percentEncodedPath.removingPercentEncoding ?? target
        let request = HTTPRequest(
            method: method, path: path, query: query, headers: HTTPHeaders(headers.map { ($0.key, $0.value) }), body: body)
        let response = await router.handle(request)
        var headerMap: [String: String] = [:]
        for field in response.headers { headerMap[field.name] = field.value }
        return Response(status: response.status, headers: headerMap, body: response.body)
    }

    // MARK: fixtures

    /// Registers a region through the admin API.
    @discardableResult
    public func region(
        _ id: String, kind: String = "serverless", primary: Bool = false, vSwitches: [String]? = nil,
        labels: [String: String] = [:], state: String = "active"
    ) async throws -> Response {
        let body: JSONValue = .object([
            "id": .string(id), "kind": .string(kind), "primary": .bool(primary), "vpcId": .string("vpc-\(id)"),
            "vSwitchIds": .array((vSwitches ?? ["vsw-\(id)-a"]).map(JSONValue.string)),
            "securityGroupId": .string("sg-\(id)"), "labels": .object(labels.mapValues(JSONValue.string)),
            "state": .string(state),
        ])
        let response = try await call("POST", "/v1/admin/regions", token: adminToken, json: body)
        guard response.status == 201 else { throw TestSetupError("region \(id): \(response.status) \(response.text)") }
        return response
    }

    /// Reports a pool: GPU when `series` is given, else general-purpose.
    @discardableResult
    public func pool(
        _ region: String, _ id: String, series: String? = nil, vendor: String? = nil, interconnect: [String] = [],
        partitions: [String] = [], gpuMemory: Double = 24, gpus: Int = 1, cpu: Double = 4,
        memory: Double = 16, capacity: Int, price: Double = 1, qos: [String]? = nil, instanceType: String? = nil,
        defer deferSeconds: Int = 600
    ) async throws -> Response {
        var body: [String: JSONValue] = [
            "computeClass": .string(series == nil ? "general-purpose" : "gpu"), "cpu": .number(cpu),
            "memoryGiB": .number(memory), "instanceType": .string(instanceType ?? "ecs.\(id)"),
            "capacity": .number(Double(capacity)), "pricePerHour": .number(price),
            "deferScaleInSeconds": .number(Double(deferSeconds)),
        ]
        if let series {
            body["gpuSeries"] = .string(series)
            body["gpuMemoryGiB"] = .number(gpuMemory)
            body["gpusPerInstance"] = .number(Double(gpus))
            if let vendor { body["gpuVendor"] = .string(vendor) }
            if !interconnect.isEmpty { body["gpuInterconnect"] = .array(interconnect.map(JSONValue.string)) }
            if !partitions.isEmpty { body["gpuPartitions"] = .array(partitions.map(JSONValue.string)) }
        }
        if let qos { body["qos"] = .array(qos.map(JSONValue.string)) }
        let response = try await call("PUT", "/v1/admin/regions/\(region)/pools/\(id)", token: adminToken, json: .object(body))
        guard response.status == 201 || response.status == 200 else {
            throw TestSetupError("pool \(region)/\(id): \(response.status) \(response.text)")
        }
        return response
    }

    /// Creates a tenant and returns its token and id.
    public func tenant(_ name: String = "team", quota: JSONValue? = nil) async throws -> (token: String, id: String) {
        var body: [String: JSONValue] = ["name": .string(name)]
        if let quota { body["quota"] = quota }
        let response = try await call("POST", "/v1/admin/tenants", token: adminToken, json: .object(body))
        guard response.status == 201, case .string(let token)? = response.json["token"],
            case .string(let id)? = response.json["id"]
        else { throw TestSetupError("tenant: \(response.status) \(response.text)") }
        return (token, id)
    }
}

extension JSONValue {
    /// Element of an array, nil out of range.
    public subscript(index: Int) -> JSONValue? {
        if case .array(let items) = self, items.indices.contains(index) { return items[index] }
        return nil
    }

    public var string: String? { stringValue }

    public var int: Int? {
        if case .number(let value) = self, value == value.rounded() { return Int(value) }
        return nil
    }

    public var array: [JSONValue] { arrayValue ?? [] }
}
