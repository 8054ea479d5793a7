import Foundation
import JSON
import TestSupport
import XCTest

/// A region "a" with 4 one-GPU T4 instances and no warm idle (a released GPU is free at
/// once), and the calls the fair-queue tests make on it.
extension TestBroker {
    static func withFourT4() async throws -> TestBroker {
        let broker = try TestBroker()
        try await broker.region("a", primary: true)
        try await broker.pool("a", "t4", series: "T4", capacity: 4, price: 1, defer: 0)
        return broker
    }

    /// Asks for `replicas` T4 GPUs with `queue: true` and checks the answer's status; returns the id.
    func queueT4(_ token: String, replicas: Int = 1, expect status: Int, file: StaticString = #filePath, line: UInt = #line)
        async throws -> String
    {
        let response = try await call("POST", "/v1/allocations", token: token, json: [
            "computeClass": "gpu", "gpuSeries": ["T4"], "gpuCount": 1, "cpu": 4, "memoryGiB": 16,
            "replicas": .number(Double(replicas)), "queue": true, "leaseSeconds": 3600,
        ])
        XCTAssertEqual(response.status, status, response.text, file: file, line: line)
        return response.json["id"]!.string!
    }

    func status(_ id: String, _ token: String) async throws -> String? {
        try await call("GET", "/v1/allocations/\(id)", token: token).json["status"]?.string
    }
}
