@testable import BrokerStore
@testable import BrokerCore
import Foundation
import JSON
import XCTest

/// The documents every grant writes by hand (`JSONWritable`) are what their `Encodable`
/// conformances give through Foundation's JSONEncoder, byte for byte.
final class JSONWritableTests: XCTestCase {
    func assertSameBytes<T: Encodable>(_ value: T, file: StaticString = #filePath, line: UInt = #line) throws {
        let timestamp: @Sendable (Date) -> String = { "t\($0.timeIntervalSince1970)" }
        let foundation = JSONEncoder()
        foundation.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        foundation.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(timestamp(date))
        }
        let ours = try SortedJSONEncoder(date: timestamp).encodeText(value)
        XCTAssertEqual(ours, String(decoding: try foundation.encode(value), as: UTF8.self), file: file, line: line)
    }

    func testAllocationAnswerAndGrantRecord() throws {
        let at = Date(timeIntervalSince1970: 1_700_000_000.25)
        let request = AllocationRequest(
            shape: ComputeShape(computeClass: .gpu, qos: .bestEffort, gpuSeries: ["T4"], gpuCount: 1, cpu: 4, memoryGiB: 15),
            replicas: 2, region: "cn-hangzhou", labels: ["app": "web/\"x\""])
        let instance = InstanceView(
            id: ResourceID(UUID()), region: "cn-hangzhou", poolId: "t4", instanceType: "ecs.gn6i", gpuSeries: "T4",
            gpuCount: 1, cpu: 4, memoryGiB: 15.5, vpcId: "vpc", vSwitchId: "vsw", securityGroupId: "sg", unit: 2,
            state: .running, reused: true, createdAt: at, labels: ["b": "2", "a": "1"])
        var cpuOnly = instance
        (cpuOnly.gpuSeries, cpuOnly.unit, cpuOnly.state, cpuOnly.reused) = (nil, nil, .idle, false)
        let decisions = [PlacementDecision(region: "cn-hangzhou", replicas: 2, reason: "T4: 3 of 4 available")]
        let view = AllocationView(
            id: ResourceID(UUID()), status: .partial, replicas: 3, placedReplicas: 2, instances: [instance, cpuOnly],
            leaseSeconds: 300, leaseExpiresAt: at, queueDeadline: nil, createdAt: at, updatedAt: at.addingTimeInterval(1),
            labels: ["app": "web"], decisions: decisions, request: request)
        try assertSameBytes(view)
        var pending = view
        (pending.instances, pending.leaseExpiresAt, pending.queueDeadline, pending.status) = ([], nil, at, .pending)
        try assertSameBytes(["allocations": [pending, view]])
        try assertSameBytes(AllocationRecord(
            id: view.id, tenantId: ResourceID(UUID()), status: .active, request: request, replicas: 3, placedReplicas: 2,
            labels: ["app": "web"], decisions: decisions, leaseSeconds: 300, maxPricePerHour: 2.5,
            placements: [PlacementRow(placement: PlannedPlacement(region: "a", poolId: "t4", count: 2, unit: 1),
                                      vSwitchIds: ["v1", "v2"], reusing: 0),
                         PlacementRow(placement: PlannedPlacement(region: "b", poolId: "g8", count: 1), vSwitchIds: ["v"], reusing: 0)],
            actor: "tenant:x", policies: "d751713988987e9331980363e24189ce"))
    }
}
