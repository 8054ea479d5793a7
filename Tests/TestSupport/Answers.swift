import BrokerCore
import BrokerStore

/// The API's answers as typed values, for `TestBroker.Response.decode`. Allocations
/// decode into `BrokerStore.AllocationView` itself; these are the answers whose Swift
/// types are internal to BrokerAPI (encode-only), written down from openapi.yaml.
public enum Answers {
    public struct Problem: Decodable, Sendable, Equatable {
        public var type: String
        public var title: String
        public var status: Int
        public var detail: String
        public var code: String
        public var errors: [FieldError]?
        public var decisions: [PlacementDecision]?
    }

    public struct FieldError: Decodable, Sendable, Equatable {
        public var field: String
        public var message: String
    }

    public struct Pool: Decodable, Sendable, Equatable {
        public var id: String
        public var region: String
        public var computeClass: ComputeClass
        public var capacity: Int
        public var allocated: Int
        public var idle: Int
        public var available: Int
        public var overcommitted: Bool
    }

    /// `GET /v1/regions/{id}/inventory`.
    public struct RegionInventory: Decodable, Sendable, Equatable {
        public var region: String
        public var pools: [Pool]
    }
}

extension Answers {
    /// `POST /v1/allocations/from-manifest` (201, JSON).
    public struct Manifest: Decodable, Sendable {
        public var allocation: AllocationView
    }
}

extension Answers {
    /// A dry run's answer (`dryRun=true`).
    public struct DryRun: Decodable, Sendable {
        public var dryRun: Bool
        public var outcome: DryRunOutcome
        public var status: Int
        public var allocation: AllocationView?
        public var problem: Problem?
        public var decisions: [PlacementDecision]
        public var pricePerHour: Double
        public var limits: [LimitVerdict]
        public var queue: QueuePosition?
        public var alternatives: [QueueAlternative]?
    }
}
