import Foundation
import JSON
import TestSupport

/// What the tests of issue 29's reports and recovery share: two regions with a T4 pool
/// each (`a`, primary and cheaper; `b`), and a report sent as the admin.
extension TestBroker {
    func twoT4Regions(capacity: Int) async throws {
        try await region("a", primary: true)
        try await region("b")
        try await pool("a", "t4", series: "T4", gpuMemory: 16, capacity: capacity, price: 1)
        try await pool("b", "t4", series: "T4", gpuMemory: 16, capacity: capacity, price: 2)
    }

    /// `POST /v1/admin/reports`, with the admin token unless another is given.
    func report(_ body: JSONValue, token: String? = nil) async throws -> Response {
        try await call("POST", "/v1/admin/reports", token: token ?? adminToken, json: body)
    }
}
