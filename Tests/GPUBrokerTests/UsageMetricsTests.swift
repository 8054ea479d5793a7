import BrokerCore
import Foundation
import JSON
import TestSupport
import XCTest
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `/metrics` of the served binary carries the month's spend and GPU-hours per region
/// and series, equal to the usage report.
final class UsageMetricsTests: XCTestCase {
    func value(_ text: String, _ family: String, region: String, series: String) -> Double? {
        let prefix = "\(family){"
        for line in text.split(separator: "\n") where line.hasPrefix(prefix) {
            guard line.contains("region=\"\(region)\""), line.contains("gpu_series=\"\(series)\"") else { continue }
            return line.split(separator: " ").last.flatMap { Double($0) }
        }
        return nil
    }

    func testSpendAndGPUHoursPerRegionAndSeriesMatchTheReport() async throws {
        let broker = try ServedBroker(environment: ["GPUBROKER_USAGE_METRICS_INTERVAL": "0.2"])
        defer { broker.stop() }
        try await broker.waitReady()
        let admin = broker.adminToken
        let region: JSONValue = ["id": "a", "kind": "serverless", "vpcId": "v", "vSwitchIds": ["s"], "securityGroupId": "g"]
        let created = try await broker.api("POST", "/v1/admin/regions", token: admin, json: region)
        XCTAssertEqual(created.status, 201)
        let pool: JSONValue = ["computeClass": "gpu", "gpuSeries": "T4", "gpuMemoryGiB": 16, "gpusPerInstance": 2, "cpu": 4,
                               "memoryGiB": 16, "instanceType": "t", "capacity": 4, "pricePerHour": 36]
        let reported = try await broker.api("PUT", "/v1/admin/regions/a/pools/t4", token: admin, json: pool)
        XCTAssertEqual(reported.status, 201)
        let tenant = try await broker.api("POST", "/v1/admin/tenants", token: admin, json: ["name": "x"])
        let token = try XCTUnwrap(tenant.body["token"]?.stringValue)
        let grant = try await broker.api(
            "POST", "/v1/allocations", token: token,
            json: ["computeClass": "gpu", "gpuSeries": ["T4"], "cpu": 4, "memoryGiB": 16, "replicas": 2])
        XCTAssertEqual(grant.status, 201)
        let released = try await broker.api("DELETE", "/v1/allocations/\(grant.body["id"]!.stringValue!)", token: token)
        XCTAssertEqual(released.status, 200)
        let report = try await broker.api("GET", "/v1/admin/usage", token: admin)
        let cost = try XCTUnwrap(report.body["total"]?["cost"]?.numberValue)
        let gpuHours = try XCTUnwrap(report.body["total"]?["gpuHours"]?.numberValue)
        XCTAssertGreaterThan(cost, 0)
        var spend: Double?
        for _ in 0..<50 {
            let (data, _) = try await URLSession.shared.data(from: URL(string: broker.url + "/metrics")!)
            let text = String(decoding: data, as: UTF8.self)
            spend = value(text, "usage_spend_month_to_date", region: "a", series: "T4")
            if spend == cost {
                XCTAssertEqual(value(text, "usage_gpu_hours_month_to_date", region: "a", series: "T4"), gpuHours)
                print("metrics: spend \(cost), GPU-hours \(gpuHours)")
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        XCTFail("usage_spend_month_to_date{region=a,gpu_series=T4} is \(String(describing: spend)), the report says \(cost)")
    }

    /// A refusal for budget is counted per budget kind, not per tenant.
    func testBudgetRefusalsAreCounted() async throws {
        let broker = try ServedBroker()
        defer { broker.stop() }
        try await broker.waitReady()
        let admin = broker.adminToken
        let region: JSONValue = ["id": "a", "kind": "serverless", "vpcId": "v", "vSwitchIds": ["s"], "securityGroupId": "g"]
        _ = try await broker.api("POST", "/v1/admin/regions", token: admin, json: region)
        let pool: JSONValue = ["computeClass": "general-purpose", "cpu": 4, "memoryGiB": 16, "instanceType": "t",
                               "capacity": 4, "pricePerHour": 36]
        _ = try await broker.api("PUT", "/v1/admin/regions/a/pools/p", token: admin, json: pool)
        let tenant = try await broker.api(
            "POST", "/v1/admin/tenants", token: admin, json: ["name": "x", "quota": ["spendPerMonth": 1]])
        let token = try XCTUnwrap(tenant.body["token"]?.stringValue)
        for _ in 0..<2 {
            let refused = try await broker.api(
                "POST", "/v1/allocations", token: token, json: ["computeClass": "general-purpose", "cpu": 4, "memoryGiB": 16, "replicas": 1])
            XCTAssertEqual(refused.body["code"]?.stringValue, "budget_exceeded", "36/h for 300 s is 3")
        }
        let (data, _) = try await URLSession.shared.data(from: URL(string: broker.url + "/metrics")!)
        let line = String(decoding: data, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix("budget_refusals_total{") }
        XCTAssertEqual(line, #"budget_refusals_total{budget="spendPerMonth"} 2"#)
    }
}
