import BrokerCore
import PostgresClient

/// What a store operation can answer besides success. The API maps each case to
/// one problem+json status in one place.
public enum StoreError: Error, Sendable, Equatable {
    case notFound(String)
    case conflict(String)
    case insufficientCapacity(String, decisions: [PlacementDecision])
    case quotaExceeded(String)
    case budgetExceeded(BudgetShortfall)
    case idempotencyKeyReused
    /// Retrying later is safe: the database is unreachable or failed over, or the
    /// capacity is too contended to reserve now. The text is shown to the client.
    case unavailable(String)
    /// The tenant holds as many as `ResourceLimits` lets it.
    case limitExceeded(ResourceLimits.Name, Int)
}

extension StoreError {
    /// Every public store operation runs its body through this: database errors that
    /// have a domain meaning become `StoreError`; anything else stays as thrown (a bug,
    /// answered 500 and logged).
    static func translating<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as PostgresError {
            throw StoreError(error) ?? error
        }
    }

    /// The one mapping from database errors to domain errors. The texts are shown to
    /// clients: they name the rule (a constraint), never the values in the row.
    /// nil: no domain meaning. `ledgerAppendOnly` is one: no request can change the
    /// ledger, so meeting it is a bug in the broker, not a conflict of the client's.
    init?(_ error: PostgresError) {
        if error.isConnectionProblem {
            self = .unavailable("the database is unreachable; retry shortly")
            return
        }
        let constraint = error.constraint ?? ""
        switch error.sqlState {
        case .uniqueViolation?:
            self = .conflict(Self.uniqueConflicts[constraint] ?? "it conflicts with an existing record (\(constraint))")
        case .foreignKeyViolation?:
            self = Self.missingReferences[constraint].map { .notFound($0) }
                ?? .conflict("it refers to a record that no longer exists, or is still referred to (\(constraint))")
        case .checkViolation?, .exclusionViolation?:
            self = .conflict(Self.ruleConflicts[constraint] ?? "the change breaks the rule \(constraint)")
        case .quotaExceeded?:
            // The tenant_usage trigger's message names the limit and the numbers.
            self = .quotaExceeded(error.message)
        case .budgetExceeded?:
            // The budget trigger's detail is the problem as JSON (migration 10).
            guard let shortfall = error.detail.flatMap(BudgetShortfall.init(json:)) else { return nil }
            self = .budgetExceeded(shortfall)
        case .planNoLongerFits?:
            // Reservations turn this into a new plan; here only if that gave up.
            self = .unavailable("capacity changed while the grant was planned; retry shortly")
        default:
            return nil
        }
    }

    private static let uniqueConflicts: [String: String] = [
        "regions_pkey": "the region already exists",
        "regions_single_primary": "another region became the primary region at the same time; retry",
        "pools_pkey": "the pool already exists",
        "policies_pkey": "the policy already exists",
        "api_tokens_tenant_id_name_key": "this tenant already has a token of that name",
        "idempotency_keys_pkey": "a request with this Idempotency-Key is being processed; retry shortly",
        "instances_live_id": "an instance was taken by another allocation at the same time; retry",
    ]

    /// Foreign keys whose referenced rows a request can see vanish (the API never
    /// deletes a row that others still refer to).
    private static let missingReferences: [String: String] = [
        "pools_region_id_fkey": "the region no longer exists",
        "allocations_tenant_id_fkey": "the tenant no longer exists",
        "policies_tenant_id_fkey": "the tenant no longer exists",
        "idempotency_keys_tenant_id_fkey": "the tenant no longer exists",
        "instances_allocation_id_fkey": "the allocation no longer exists",
    ]

    private static let ruleConflicts: [String: String] = [
        "regions_one_primary": "a region must be the primary region while any region exists",
        "allocations_placed_within_replicas": "an allocation cannot hold more replicas than it asks for",
        "allocations_columns_by_status": "the allocation's lease and queue deadline do not fit its status",
        "pools_qos_known": "a pool serves known QoS levels, each once",
        "pools_gpu_fields_only_for_gpu": "GPU fields are set exactly for pools of compute class gpu",
        "pools_accelerator_only_for_gpu": "a GPU pool says whose accelerator it is, and a pool of another class has none",
        "pools_gpu_vendor_known": "a pool's accelerator vendor is one the broker knows",
    ]
}
