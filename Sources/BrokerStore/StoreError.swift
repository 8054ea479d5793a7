import BrokerCore
import PostgresClient

/// What a store operation can answer besides success. The API maps each case to
/// one problem+json status in one place.
public enum StoreError: Error, Sendable, Equatable {
    case notFound(String)
    case conflict(String)
    case insufficientCapacity(String, decisions: [PlacementDecision])
    case quotaExceeded(String)
    case idempotencyKeyReused
    /// Retrying later is safe: the database is unreachable or failed over, or the
    /// capacity is too contended to reserve now. The text is shown to the client.
    case unavailable(String)
}

extension StoreError {
    /// Connection-level database failures become `unavailable`; anything else stays as thrown.
    static func translating<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as PostgresError where error.isConnectionProblem {
            throw StoreError.unavailable("the database is unreachable; retry shortly")
        }
    }
}
