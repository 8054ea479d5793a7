// Every closed list of words the API, the database and the console share, defined here
// once. The SQL checks and the OpenAPI enums are kept equal to these by
// `VocabularyTests` (BrokerAPITests), which reads the live database's catalog and
// openapi/openapi.yaml; the CLI and the console derive their lists and colours from
// these at run time. docs/ARCHITECTURE.md says what adding a value takes. A few lists
// live beside the code they belong to (`AcceleratorVendor`, `Precision`,
// `PlacementStrategy`, `UsageGrouping`, `ResourceLimits.Name`); the same test keeps
// those equal too.

import Foundation

public enum RegionKind: String, Codable, Sendable, CaseIterable {
    case serverless
    case onPremises = "on-premises"
}

public enum RegionState: String, Codable, Sendable, CaseIterable {
    case active
    case cordoned
}

public enum ComputeClass: String, Codable, Sendable, CaseIterable {
    case generalPurpose = "general-purpose"
    case performance
    case gpu
}

public enum QoS: String, Codable, Sendable, CaseIterable {
    case `default` = "default"
    case bestEffort = "best-effort"
}

public enum AllocationStatus: String, Codable, Sendable, CaseIterable {
    case pending, active, partial, released, expired, unschedulable
}

public enum InstanceState: String, Codable, Sendable, CaseIterable {
    /// `preempting`: still running, under notice until its `preemptDeadline`.
    case running, idle, released, preempted, preempting
    /// Lost, as a region's agent reported (`CapacityReportKind`).
    case interrupted, failedToStart
}

/// What a ledger row records; each kind is also an event type, `allocation.<kind>`.
public enum LedgerKind: String, Codable, Sendable, CaseIterable {
    /// `preempting` (delta 0): an instance was given notice; `preempted` follows when it stops.
    case reserved, renewed, released, expired, preempted, idled, deprovisioned, preempting
    /// An instance lost, as reported (delta -1).
    case interrupted, failedToStart

    public var eventType: String { "allocation." + rawValue }
}

/// What an inventory event (the admin's feed) is about; its type is `<subject>.<change>`.
public enum InventorySubject: String, Sendable, CaseIterable {
    case region, pool
}

public enum InventoryChange: String, Sendable, CaseIterable {
    case created, changed, deleted
}

/// The event types of the feed, of webhooks and of watch streams.
public enum EventTypes {
    /// One per ledger kind: what a tenant's endpoints may ask for.
    public static let allocation = LedgerKind.allCases.map(\.eventType)
    /// The inventory's changes: the admin's endpoints only.
    public static let inventory = InventorySubject.allCases.flatMap { subject in
        InventoryChange.allCases.map { "\(subject.rawValue).\($0.rawValue)" }
    }
}

/// What a region's agent reports (`POST /v1/admin/reports`): instances lost, or a pool
/// out of stock for a cool-down.
public enum CapacityReportKind: String, Codable, Sendable, CaseIterable {
    case interrupted, failedToStart, outOfStock
}

public enum WebhookEndpointStatus: String, Codable, Sendable, CaseIterable {
    case active, failing
}

public enum WebhookDeliveryStatus: String, Codable, Sendable, CaseIterable {
    case pending, delivered, failed
}

/// What a caller may do: the route table (BrokerAPI's `RouteRoles`) names, per route, the
/// roles that may call it.
public enum Role: String, Codable, Sendable, CaseIterable {
    /// The platform operator: regions, pools, tenants.
    case admin
    /// A tenant's own administrator: its tokens, policies and webhooks, and all a member does.
    case tenantAdmin = "tenant-admin"
    /// Requests, scales, renews and releases allocations.
    case member
    /// Reads only.
    case viewer
    /// Usage and spend.
    case billing
}

/// What a token with scopes may do, narrower than its role: a route that states a scope
/// answers such a token only when the token holds that scope.
public enum TokenScope: String, Codable, Sendable, CaseIterable {
    case allocationsRead = "allocations:read"
    case allocationsWrite = "allocations:write"
    case policiesRead = "policies:read"
    case policiesWrite = "policies:write"
    case webhooksRead = "webhooks:read"
    case webhooksWrite = "webhooks:write"
    case eventsRead = "events:read"
    case inventoryRead = "inventory:read"
    case usageRead = "usage:read"
}

/// Who a token is (`GET /v1/whoami`).
public enum CallerRole: String, Codable, Sendable, CaseIterable {
    case admin, tenant
}

/// What a dry run (`dryRun=true`) says the real request would do.
public enum DryRunOutcome: String, Codable, Sendable, CaseIterable {
    case granted, queued, refused
}

/// A tenant's limits as a dry run reports them: its quota's members, then its monthly budgets.
public enum LimitName: String, Codable, Sendable, CaseIterable {
    case instances, gpus, cpu, memoryGiB, spendPerMonth, gpuHoursPerMonth
}

/// What a queued request's alternative changes to fit now.
public enum AlternativeChange: String, Codable, Sendable, CaseIterable {
    case region, gpuSeries, maxPricePerHour
}

/// The machine `code` of a problem+json answer.
public enum ProblemCode: String, Sendable, CaseIterable {
    case invalidRequest = "invalid_request"
    case validationFailed = "validation_failed"
    case unauthorized
    case forbidden
    case notFound = "not_found"
    case conflict
    case insufficientCapacity = "insufficient_capacity"
    case quotaExceeded = "quota_exceeded"
    case budgetExceeded = "budget_exceeded"
    case idempotencyKeyReused = "idempotency_key_reused"
    case payloadTooLarge = "payload_too_large"
    case unsupportedMediaType = "unsupported_media_type"
    case methodNotAllowed = "method_not_allowed"
    case unavailable
    case rateLimited = "rate_limited"
    case limitExceeded = "limit_exceeded"
    case internalError = "internal_error"

    /// The problem's `type` URI: the code with dashes under the broker's problem base.
    public var typeURI: String { "https://gpubroker.dev/problems/" + rawValue.replacingOccurrences(of: "_", with: "-") }
}

/// How a state word reads to a person: the CLI's colour and the console badge's.
public enum StateTone: String, Sendable, CaseIterable {
    /// All is well.
    case good
    /// Waiting, or short of what was asked.
    case waiting
    /// Stuck or lost: someone should look.
    case stuck
    /// Over and done.
    case over

    /// The tone of a status or state word of any of the lists above; nil for other words.
    /// A word in several lists (`active`, `released`) has one tone in all of them.
    public static func of(_ word: String) -> StateTone? { byWord[word] }

    static let byWord: [String: StateTone] = {
        var tones: [String: StateTone] = [:]
        for (word, tone) in allWords { tones[word] = tone }
        return tones
    }()

    /// Every (word, tone) pair as the lists give them, repeats included.
    static var allWords: [(String, StateTone)] {
        AllocationStatus.allCases.map { ($0.rawValue, $0.tone) } + InstanceState.allCases.map { ($0.rawValue, $0.tone) }
            + RegionState.allCases.map { ($0.rawValue, $0.tone) } + WebhookEndpointStatus.allCases.map { ($0.rawValue, $0.tone) }
    }
}

extension AllocationStatus {
    /// Nothing held and nothing awaited any more: what history retention removes (and
    /// migration 12's `allocations_ended` indexes; `VocabularyTests` keeps the two equal).
    public var hasEnded: Bool {
        switch self {
        case .released, .expired, .unschedulable: true
        case .pending, .active, .partial: false
        }
    }

    /// Holding a lease over the instances placed for it.
    public var holdsLease: Bool {
        switch self {
        case .active, .partial: true
        case .pending, .released, .expired, .unschedulable: false
        }
    }

    /// Still wanted, lease holders first: what the console lists as live.
    public static let live = allCases.filter(\.holdsLease) + allCases.filter { !$0.hasEnded && !$0.holdsLease }

    public var tone: StateTone {
        switch self {
        case .active: .good
        case .pending, .partial: .waiting
        case .expired, .unschedulable: .stuck
        case .released: .over
        }
    }
}

extension InstanceState {
    public var tone: StateTone {
        switch self {
        case .running: .good
        case .idle, .preempting: .waiting
        case .preempted, .interrupted, .failedToStart: .stuck
        case .released: .over
        }
    }
}

extension RegionState {
    public var tone: StateTone {
        switch self {
        case .active: .good
        case .cordoned: .waiting
        }
    }
}

extension WebhookEndpointStatus {
    public var tone: StateTone {
        switch self {
        case .active: .good
        case .failing: .stuck
        }
    }
}

/// The resources a fair share names without a model; `gpu:<model>` names one accelerator
/// model (`ShareResource`).
public enum SharedResourceKind: String, Codable, Sendable, CaseIterable {
    case gpus, cpu, memoryGiB
}
