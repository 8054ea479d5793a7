import BrokerCore
import BrokerStore
import Foundation
import JSON
import PostgresClient
import TestSupport
import XCTest

/// A dry run answers exactly what the real request then does, and keeps nothing: over
/// random inventories (idle instances, best-effort instances to preempt), tenants with
/// quotas and budgets, and requests that are granted, partial, queued or refused, then
/// scaled and renewed.
final class DryRunPropertyTests: XCTestCase {
    static let cases = 24

    func testADryRunAnswersWhatTheRealRequestDoesAndKeepsNothing() async throws {
        var outcomes: [String: Int] = [:]
        for n in 0..<Self.cases {
            var rng = SystemRandomNumberGenerator()
            let broker = try TestBroker(transport: .inProcess)
            do {
                let scenario = try await Scenario.make(broker, &rng)
                for (route, dry, real) in try await scenario.rehearseAndRun(broker, &rng) {
                    let context = "case \(n), \(route)\n\(scenario.description)"
                    try Self.assertSame(dry, real, context)
                    outcomes["\(route) \(dry.outcome.rawValue) \(dry.status)", default: 0] += 1
                }
            } catch {
                await broker.stop()
                throw error
            }
            await broker.stop()
        }
        print("dry runs by route, outcome and status: \(outcomes.sorted { $0.key < $1.key })")
        let seen = Set(outcomes.keys.map { $0.split(separator: " ").dropFirst().joined(separator: " ") })
        for kind in ["granted 201", "queued 202", "refused 409", "refused 403"] {
            XCTAssertTrue(seen.contains(kind), "\(Self.cases) random cases never saw \(kind): \(outcomes)")
        }
    }

    /// What the dry run said against what the real request answered.
    static func assertSame(_ dry: Answers.DryRun, _ real: TestBroker.Response, _ context: String) throws {
        XCTAssertTrue(dry.dryRun, context)
        XCTAssertEqual(dry.status, real.status, "dry run said \(dry.status), the request answered \(real.text)\n\(context)")
        guard dry.status == real.status else { return }
        if let problem = dry.problem {
            let answered = try real.decode(Answers.Problem.self)
            XCTAssertEqual(problem.code, answered.code, context)
            XCTAssertEqual(problem.decisions, answered.decisions, context)
            // Quota and budget details count what the path that refused reached; capacity's is the plan's.
            if problem.code == ProblemCode.insufficientCapacity.rawValue { XCTAssertEqual(problem.detail, answered.detail, context) }
            return
        }
        let allocation = try real.decode(AllocationView.self)
        guard let rehearsed = dry.allocation else { return XCTFail("no allocation in a \(dry.outcome) dry run\n\(context)") }
        XCTAssertEqual(rehearsed.status, allocation.status, context)
        XCTAssertEqual(rehearsed.placedReplicas, allocation.placedReplicas, context)
        XCTAssertEqual(rehearsed.decisions, allocation.decisions, context)
        XCTAssertEqual(rehearsed.request, allocation.request, context)
        XCTAssertEqual(rehearsed.alternatives, allocation.alternatives, context)
        XCTAssertEqual(dry.alternatives, allocation.alternatives, context)
        func placed(_ view: AllocationView) -> [String] {
            view.instances.map { "\($0.region)/\($0.poolId)/\($0.state.rawValue)/\($0.vSwitchId)/unit\($0.unit ?? -1)/\($0.reused)" }.sorted()
        }
        XCTAssertEqual(placed(rehearsed), placed(allocation), context)
        XCTAssertEqual(dry.outcome == .queued, allocation.status == .pending, context)
    }

    /// One random world: regions and pools, a tenant with or without a quota and budget,
    /// load already placed (best-effort too, and some released to idle), and a request.
    struct Scenario: CustomStringConvertible {
        var lines: [String] = []
        var token = ""
        var request: JSONValue = .null
        var description: String { lines.joined(separator: "\n") }

        static let series = ["T4", "A10", "L20"]

        static func make(_ broker: TestBroker, _ rng: inout SystemRandomNumberGenerator) async throws -> Scenario {
            var scenario = Scenario()
            let regions = (0..<Int.random(in: 1...3, using: &rng)).map { "r\($0)" }
            for (k, region) in regions.enumerated() {
                try await broker.region(region, primary: k == 0, vSwitches: ["vsw-\(region)-a", "vsw-\(region)-b"])
                for p in 0..<Int.random(in: 1...2, using: &rng) {
                    let model = Self.series.randomElement(using: &rng)!
                    let capacity = Int.random(in: 1...6, using: &rng)
                    let price = Double(Int.random(in: 1...6, using: &rng))
                    let deferSeconds = Bool.random(using: &rng) ? 0 : 600
                    try await broker.pool(
                        region, "p\(p)", series: model, capacity: capacity, price: price, defer: deferSeconds)
                    scenario.lines.append("pool \(region)/p\(p) \(model) capacity \(capacity) price \(price) defer \(deferSeconds)")
                }
            }
            let others = try await broker.tenant("others")
            for _ in 0..<Int.random(in: 0...3, using: &rng) {
                let qos = Bool.random(using: &rng) ? "best-effort" : "default"
                let load = try await broker.call(
                    "POST", "/v1/allocations", token: others.token,
                    json: ["computeClass": "gpu", "gpuSeries": .array(series.map(JSONValue.string)), "cpu": 2, "memoryGiB": 8,
                           "replicas": .number(Double(Int.random(in: 1...3, using: &rng))), "allOrNothing": false,
                           "qos": .string(qos)])
                scenario.lines.append("load \(qos): \(load.status)")
                if load.status == 201, Bool.random(using: &rng), case .string(let id)? = load.json["id"] {
                    _ = try await broker.call("DELETE", "/v1/allocations/\(id)", token: others.token)
                    scenario.lines.append("  released")
                }
            }
            var quota: [String: JSONValue] = [:]
            if Int.random(in: 0..<3, using: &rng) == 0 { quota["instances"] = .number(Double(Int.random(in: 1...6, using: &rng))) }
            if Int.random(in: 0..<3, using: &rng) == 0 { quota["gpus"] = .number(Double(Int.random(in: 1...6, using: &rng))) }
            if Int.random(in: 0..<3, using: &rng) == 0 { quota["spendPerMonth"] = .number(Double(Int.random(in: 1...40, using: &rng))) }
            scenario.token = try await broker.tenant("team", quota: quota.isEmpty ? nil : .object(quota)).token
            scenario.lines.append("quota \(String(decoding: JSONValue.object(quota).encoded(), as: UTF8.self))")
            var body: [String: JSONValue] = [
                "computeClass": "gpu", "cpu": 2, "memoryGiB": 8,
                "gpuSeries": .array(series.shuffled(using: &rng).prefix(Int.random(in: 1...2, using: &rng)).map(JSONValue.string)),
                "replicas": .number(Double(Int.random(in: 1...6, using: &rng))),
                "allOrNothing": .bool(Bool.random(using: &rng)), "queue": .bool(Bool.random(using: &rng)),
                "leaseSeconds": .number(Double([60, 600, 3600, 36_000].randomElement(using: &rng)!)),
            ]
            if Int.random(in: 0..<4, using: &rng) == 0 { body["maxPricePerHour"] = .number(Double(Int.random(in: 1...5, using: &rng))) }
            if Int.random(in: 0..<4, using: &rng) == 0 { body["region"] = .string(regions.randomElement(using: &rng)!) }
            scenario.request = .object(body)
            scenario.lines.append("request \(String(decoding: scenario.request.encoded(), as: UTF8.self))")
            return scenario
        }

        /// Each route as a dry run then for real: the request, then (when granted) a scale
        /// and a renew. The database must be unchanged by every dry run.
        func rehearseAndRun(
            _ broker: TestBroker, _ rng: inout SystemRandomNumberGenerator
        ) async throws -> [(String, Answers.DryRun, TestBroker.Response)] {
            var results: [(String, Answers.DryRun, TestBroker.Response)] = []
            let key = Bool.random(using: &rng) ? ["Idempotency-Key": UUID().uuidString] : [:]
            let created = try await step(broker, "POST", "/v1/allocations", request, headers: key)
            results.append(("create", created.dry, created.real))
            guard created.real.status == 201, case .string(let id)? = created.real.json["id"] else { return results }
            let scaled = try await step(
                broker, "PATCH", "/v1/allocations/\(id)", ["replicas": .number(Double(Int.random(in: 1...7, using: &rng)))])
            results.append(("scale", scaled.dry, scaled.real))
            let renewed = try await step(
                broker, "POST", "/v1/allocations/\(id)/renew",
                ["leaseSeconds": .number(Double([60, 3600, 86_400].randomElement(using: &rng)!))])
            results.append(("renew", renewed.dry, renewed.real))
            return results
        }

        func step(
            _ broker: TestBroker, _ method: String, _ path: String, _ body: JSONValue, headers: [String: String] = [:]
        ) async throws -> (dry: Answers.DryRun, real: TestBroker.Response) {
            let before = try DatabaseState.read(broker)
            let dry = try await broker.call(method, path + "?dryRun=true", token: token, json: body, headers: headers)
            XCTAssertEqual(dry.status, 200, "\(method) \(path) dry run: \(dry.text)\n\(description)")
            XCTAssertEqual(try DatabaseState.read(broker), before, "a dry run of \(method) \(path) changed the database\n\(description)")
            let real = try await broker.call(method, path, token: token, json: body, headers: headers)
            return (try dry.decode(Answers.DryRun.self), real)
        }
    }
}

/// Every table's row count and a digest of its rows, and the ledger's last sequence number.
struct DatabaseState: Equatable {
    var rows: [String: String]
    var ledgerLastSeq: Int64?

    static func read(_ broker: TestBroker) throws -> DatabaseState {
        let c = try PostgresConnection.connect(PostgresConfiguration(url: broker.databaseURL))
        let tables = try c.query(
            "SELECT table_name::text AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        ).map { try $0.decode("name", as: String.self) }
        var rows: [String: String] = [:]
        for table in tables {
            let row = try c.query(
                "SELECT count(*)::text || ' ' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') AS state FROM \"\(table)\" t")[0]
            rows[table] = try row.decode("state")
        }
        return DatabaseState(rows: rows, ledgerLastSeq: try c.query("SELECT max(seq) AS seq FROM ledger")[0].decodeIfPresent("seq"))
    }
}
