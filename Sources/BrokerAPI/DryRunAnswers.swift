import BrokerCore
import BrokerStore
import Foundation
import JSON
import MicroHTTP

/// `dryRun=true` on `POST /v1/allocations`, from-manifest, scale and renew: what the request would do,
/// answered 200 (never 201 or 202) with `dryRun: true`, and nothing kept.
enum DryRunAnswers {
    /// Whether the request asks for a dry run: `dryRun=true` (or `false`, the default).
    static func requested(_ request: HTTPRequest) throws -> Bool {
        switch request.query["dryRun"] {
        case nil, "false": return false
        case "true": return true
        default: throw ValidationFailure(field: "dryRun", message: "must be true or false")
        }
    }

    /// The answer: `grantedStatus` is what the real request answers when it succeeds
    /// (201 for a new allocation, 200 for a change); `tenant` names the owner in the
    /// admin's answers.
    static func response(
        _ result: DryRunResult, grantedStatus: Int, tenant: UUID? = nil, manifest: ManifestAnswer? = nil
    ) throws -> HTTPResponse {
        let problem = result.refusal.flatMap { Problem.from($0) }
        var allocation = result.allocation
        allocation?.tenantId = tenant.map(ResourceID.init)
        let answer = DryRunAnswer(
            outcome: result.outcome,
            status: problem?.status ?? (result.outcome == .queued ? 202 : grantedStatus),
            allocation: allocation, problem: problem?.body(requestId: nil), decisions: result.decisions,
            pricePerHour: result.pricePerHour, limits: result.limits, queue: result.queue,
            alternatives: result.allocation?.alternatives, manifest: manifest)
        return try JSONBodies.response(200, answer)
    }
}

/// The body of a dry run's answer (`DryRun` in openapi.yaml).
struct DryRunAnswer: Encodable {
    var dryRun = true
    var outcome: DryRunOutcome
    /// The HTTP status the real request would answer.
    var status: Int
    /// The allocation as the real request would answer it (granted or queued).
    var allocation: AllocationView?
    /// The problem+json the real request would answer (refused).
    var problem: JSONValue?
    var decisions: [PlacementDecision]
    var pricePerHour: Double
    var limits: [LimitVerdict]
    var queue: QueuePosition?
    var alternatives: [QueueAlternative]?
    /// A manifest's answer as `from-manifest` would give it (granted).
    var manifest: ManifestAnswer?
}
