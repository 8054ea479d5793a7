import Foundation
import JSON
import TestHarness
import TestSupport
import XCTest

/// `/metrics` carries the inventory and the queue as gauges, and the sample alert rules
/// of docs/monitoring fire on them: promtool (Debian `prometheus`, scripts/install-deps)
/// evaluates the rules over series holding what a live broker exposed.
final class CapacityAlertTests: XCTestCase {
    var broker: TestBroker!
    static let rules = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/monitoring/prometheus-alerts.yaml").path

    override func setUp() async throws {
        broker = try TestBroker()
        try await broker.region("r1", primary: true)
        try await broker.region("r2")
        try await broker.pool("r1", "t4", series: "T4", gpuMemory: 16, capacity: 2, price: 1.25)
        try await broker.pool("r2", "t4", series: "T4", gpuMemory: 16, capacity: 3)
        try await broker.pool("r1", "cpu", cpu: 2, memory: 4, capacity: 50, price: 0.1)
    }

    override func tearDown() async throws {
        await broker.stop()
    }

    /// The samples of the capacity and queue families, by series.
    func scrape() async throws -> [String: String] {
        let text = try await broker.call("GET", "/metrics").text
        var samples: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("pool_") || line.hasPrefix("pending_") {
            guard let space = line.lastIndex(of: " ") else { continue }
            samples[String(line[..<space])] = String(line[line.index(after: space)...])
        }
        return samples
    }

    /// Runs promtool's rule test: the samples held for 15 minutes, `expected` the alerts of
    /// `alert` at minute 10 (as a YAML flow list).
    func promtool(_ samples: [String: String], alert: String, expected: String) throws -> (status: Int32, output: String) {
        let series = samples.sorted { $0.key < $1.key }.map { "      - series: '\($0.key)'\n        values: '\($0.value)x15'" }
        let test = """
            rule_files: ['\(Self.rules)']
            evaluation_interval: 1m
            tests:
              - interval: 1m
                input_series:
            \(series.joined(separator: "\n"))
                alert_rule_test:
                  - eval_time: 10m
                    alertname: \(alert)
                    exp_alerts: \(expected)
            """
        let path = NSTemporaryDirectory() + "gpb-alerts-\(UUID().uuidString.prefix(8)).yaml"
        try test.write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
        process.arguments = ["test", "rules", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output + "\n" + test)
    }

    func testTheAlertFiresWhenARegionRunsOutOfT4() async throws {
        let tenant = try await broker.tenant().token
        let before = try await scrape()
        let t4 = #"{region="r1",pool="t4",compute_class="gpu",gpu_series="T4"}"#
        XCTAssertEqual(before["pool_capacity_instances\(t4)"], "2", "\(before)")
        XCTAssertEqual(before["pool_available_replicas\(t4)"], "2")
        XCTAssertEqual(before["pool_price_per_hour\(t4)"], "1.25")
        let quiet = try promtool(before, alert: "GPUSeriesExhaustedInRegion", expected: "[]")
        XCTAssertEqual(quiet.status, 0, quiet.output)

        let shape: JSONValue = ["computeClass": "gpu", "gpuSeries": ["T4"], "gpuCount": 1, "cpu": 4, "memoryGiB": 16, "region": "r1"]
        var all = shape.objectValue!
        all["replicas"] = 2
        let granted = try await broker.call("POST", "/v1/allocations", token: tenant, json: .object(all))
        XCTAssertEqual(granted.status, 201, granted.text)
        var waiting = shape.objectValue!
        waiting["replicas"] = 1
        waiting["queue"] = true
        let queued = try await broker.call("POST", "/v1/allocations", token: tenant, json: .object(waiting))
        XCTAssertEqual(queued.status, 202, queued.text)

        let after = try await scrape()
        XCTAssertEqual(after["pool_running_instances\(t4)"], "2", "\(after)")
        XCTAssertEqual(after["pool_available_instances\(t4)"], "0")
        XCTAssertEqual(after["pool_available_replicas\(t4)"], "0")
        XCTAssertEqual(after[#"pending_allocations{compute_class="gpu",gpu_series="T4",region="r1"}"#], "1")
        XCTAssertEqual(after[#"pending_replicas{compute_class="gpu",gpu_series="T4",region="r1"}"#], "1")
        XCTAssertNotNil(after[#"pending_oldest_wait_seconds{compute_class="gpu",gpu_series="T4",region="r1"}"#])
        let fired = try promtool(after, alert: "GPUSeriesExhaustedInRegion", expected: """
            [{exp_labels: {severity: warning, region: r1, gpu_series: T4}, exp_annotations: {summary: "r1 has no T4 left", \
            description: "Every T4 pool of r1 is fully held: requests fall back to other regions, or queue when pinned."}}]
            """)
        XCTAssertEqual(fired.status, 0, fired.output)
        // r2 still has T4s: the fleet-wide rule stays quiet.
        let fleet = try promtool(after, alert: "GPUSeriesExhausted", expected: "[]")
        XCTAssertEqual(fleet.status, 0, fleet.output)
    }
}
