import BrokerCore
import BrokerStore
import Foundation
import JSON
import TestHarness
import TestSupport
import XCTest

/// In-process calls are worth as much as socket calls only if they answer alike: the
/// same requests, through both transports to one database, get the same status, type
/// and body.
final class TransportTests: XCTestCase {
    func testInProcessAndSocketAnswersAreTheSame() async throws {
        let socket = try TestBroker()
        let inProcess = try TestBroker(databaseURL: socket.databaseURL, transport: .inProcess)
        try await socket.region("a")
        try await socket.pool("a", "cpu", cpu: 2, memory: 4, capacity: 10)
        let token = try await socket.tenant().token
        let created = try await inProcess.call(
            "POST", "/v1/allocations", token: token,
            json: ["computeClass": "general-purpose", "cpu": 1, "memoryGiB": 2, "replicas": 2])
        XCTAssertEqual(created.status, 201, created.text)
        let id = try created.decode(AllocationView.self).id
        let requests: [(String, String, [UInt8]?)] = [
            ("GET", "/v1/regions", nil),
            ("GET", "/v1/regions/a/inventory", nil),
            ("GET", "/v1/inventory?computeClass=general-purpose&cpu=1&memoryGiB=2", nil),
            ("GET", "/v1/inventory?computeClass=quantum", nil),
            ("GET", "/v1/allocations/\(id)", nil),
            ("GET", "/v1/allocations?limit=1", nil),
            ("GET", "/v1/allocations/\(UUID().uuidString.lowercased())", nil),
            ("GET", "/v1/no-such-endpoint", nil),
            ("DELETE", "/v1/regions", nil),
            ("POST", "/v1/allocations", Array("{not json".utf8)),
            ("POST", "/v1/allocations", Array(#"{"computeClass":"general-purpose","cpu":1,"memoryGiB":2,"replicas":0}"#.utf8)),
        ]
        for (method, path, body) in requests {
            let headers = body == nil ? [:] : ["Content-Type": "application/json"]
            let viaSocket = try await socket.call(method, path, token: token, body: body, headers: headers)
            let viaRouter = try await inProcess.call(method, path, token: token, body: body, headers: headers)
            XCTAssertEqual(viaRouter.status, viaSocket.status, "\(method) \(path)")
            XCTAssertEqual(viaRouter.header("Content-Type"), viaSocket.header("Content-Type"), "\(method) \(path)")
            XCTAssertNotEqual(viaSocket.json, .null, "\(method) \(path): \(viaSocket.text)")
            XCTAssertEqual(Self.withoutRequestId(viaRouter.json), Self.withoutRequestId(viaSocket.json), "\(method) \(path)")
            if viaSocket.status >= 400 {
                XCTAssertEqual(try viaRouter.decode(Answers.Problem.self), try viaSocket.decode(Answers.Problem.self))
            }
        }
        await inProcess.stop()
        await socket.stop()
    }

    /// Problems carry the request's own id.
    static func withoutRequestId(_ value: JSONValue) -> JSONValue {
        guard case .object(var members) = value else { return value }
        members["requestId"] = nil
        return .object(members)
    }
}
