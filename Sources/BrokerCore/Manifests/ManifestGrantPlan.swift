import Foundation

/// How a manifest's workloads are granted: the whole file in one transaction, all or none
/// (one workload that cannot be placed refuses the file and nothing stays reserved). The
/// store carries the steps out in document order; this decides what each step tries, in
/// which order, and under which idempotency key, and words the refusal when every try fails.
public struct ManifestGrantPlan: Sendable, Equatable {
    public enum Step: Sendable, Equatable {
        /// A workload with no pods to place (replicas 0): nothing reserved.
        case nothing
        /// The first request that can be satisfied is granted (a pod's instance types in
        /// the order listed): one allocation.
        case firstOf(Alternatives)
        /// Every pod template in one region, the first of `regions` that holds them all:
        /// one allocation per template.
        case together(Group)
    }

    public struct Alternatives: Sendable, Equatable {
        public var requests: [AllocationRequest]
        public var key: String?

        /// The refusal when none could be granted, from each try's reason and decisions.
        /// With one request its own refusal stands, so this is asked only for several.
        public func refusal(_ tries: [(detail: String, decisions: [PlacementDecision])]) -> (String, [PlacementDecision]) {
            var details: [String] = []
            var decisions: [PlacementDecision] = []
            for (request, failed) in zip(requests, tries) {
                let attempt = Self.describe(request.shape)
                details.append("\(attempt): \(failed.detail)")
                decisions += failed.decisions.map {
                    PlacementDecision(region: $0.region, replicas: $0.replicas, reason: "\(attempt): \($0.reason)")
                }
            }
            return ("no choice the manifest allows can be satisfied: \(details.joined(separator: "; "))", decisions)
        }

        /// What distinguishes one try from the next: its instance type, else its series.
        static func describe(_ shape: ComputeShape) -> String {
            if let type = shape.instanceType { return type }
            return shape.gpuSeries.isEmpty ? "any series" : shape.gpuSeries.joined(separator: ", ")
        }
    }

    public struct Group: Sendable, Equatable {
        /// The templates as the manifest asks for them: what their idempotency keys compare.
        public var components: [AllocationRequest]
        public var regions: [String]
        /// Component i is recorded under `<key>/<i>`.
        public var key: String?

        /// The templates pinned to `region`, each granted whole or not at all, never queued.
        public func pinned(to region: String) -> [AllocationRequest] {
            components.map { component in
                var pinned = component
                pinned.region = region
                pinned.placement = nil
                pinned.allOrNothing = true
                pinned.queue = false
                return pinned
            }
        }

        public func componentKey(_ index: Int) -> String? { key.map { "\($0)/\(index)" } }

        public var refusal: String {
            let total = components.reduce(0) { $0 + $1.replicas }
            return "no region can hold all \(components.count) pod templates (\(total) replicas) together"
        }
    }

    public var steps: [Step]
    /// Keys derived by the broker (no `Idempotency-Key` sent) replay only this long.
    public var keyLifetimeSeconds: Int?

    /// The keys were derived from the file itself: a file with the same key is the same
    /// file, so its first answer is replayed even when it now translates otherwise (the
    /// inventory changed which instance types or devices it reads as), rather than refused
    /// as a reused key the client never sent.
    public var keysNameTheFile: Bool { keyLifetimeSeconds != nil }

    /// The steps for `workloads` in document order. With a key, the i-th workload (from 0)
    /// is recorded under `<key>#<i>`, the first under `<key>` itself; groups try
    /// `groupRegions` (in that order) that every template's pins and affinity allow.
    public init(_ workloads: [ManifestTranslation], key: String?, groupRegions: [String], keyLifetimeSeconds: Int? = nil) {
        steps = workloads.enumerated().map { index, workload in
            if workload.isEmpty { return .nothing }
            let workloadKey = index == 0 ? key : key.map { "\($0)#\(index)" }
            guard workload.together else { return .firstOf(Alternatives(requests: workload.requests, key: workloadKey)) }
            return .together(Group(
                components: workload.components.map { $0.requests[0] },
                regions: ManifestTranslator.allowedRegions(workload, among: groupRegions), key: workloadKey))
        }
        self.keyLifetimeSeconds = keyLifetimeSeconds
    }

    /// Every key a grant of this plan may record.
    public var keys: [String] {
        steps.flatMap { step -> [String] in
            switch step {
            case .nothing: return []
            case .firstOf(let alternatives): return alternatives.key.map { [$0] } ?? []
            case .together(let group): return group.components.indices.compactMap(group.componentKey)
            }
        }
    }
}
