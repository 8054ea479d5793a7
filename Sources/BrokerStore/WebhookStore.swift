import BrokerCore
import Foundation
import JSON
import PostgresClient

/// A tenant's webhook endpoint as the API shows it (never its secret, except right
/// after creation or rotation).
public struct WebhookEndpoint: Codable, Sendable, Equatable {
    public var id: ResourceID
    public var url: String
    public var eventTypes: [String]
    public var status: String
    public var createdAt: Date
    public var updatedAt: Date
}

/// One event to one endpoint, with its last attempt.
public struct WebhookDelivery: Codable, Sendable, Equatable {
    public var id: Int64
    public var messageId: String
    public var eventType: String
    public var allocationId: ResourceID?
    public var status: String
    public var attempts: Int
    public var nextAttemptAt: Date?
    public var lastAttemptAt: Date?
    public var lastStatus: Int?
    public var lastError: String?
    public var deliveredAt: Date?
    public var createdAt: Date
}

/// What came of one attempt.
public struct AttemptOutcome: Sendable, Equatable {
    public var id: Int64
    public var delivered: Bool
    /// The receiver's HTTP status, if it answered.
    public var status: Int?
    public var reason: String?
    /// nil for a failure: out of retries, failed for good.
    public var retryIn: Duration?

    /// A 2xx answer: delivered, and the endpoint is active again.
    public static func delivered(_ id: Int64, status: Int) -> AttemptOutcome {
        AttemptOutcome(id: id, delivered: true, status: status)
    }

    /// Another answer or none: tried again after `retryIn`, or, with `retryIn` nil (out of
    /// retries), failed for good and its endpoint marked failing.
    public static func failed(_ id: Int64, status: Int?, reason: String, retryIn: Duration?) -> AttemptOutcome {
        AttemptOutcome(id: id, delivered: false, status: status, reason: reason, retryIn: retryIn)
    }
}

/// A delivery claimed for sending: this broker has it for a minute.
public struct ClaimedDelivery: Sendable {
    public var id: Int64
    public var messageId: String
    public var payload: String
    public var attempts: Int
    public var url: String
    /// The secrets to sign with: the current one, and the previous one for a day after a rotation.
    public var secrets: [String]
    public var age: Duration
}

/// Webhook endpoints and their deliveries (migrations 6 and 11). Deliveries are made
/// from the ledger by `dispatch()`, off the grant path, and sent by whichever broker
/// claims them. An endpoint's owner is a tenant, or nil: the admin, whose endpoints may
/// take every tenant's allocation events and the inventory's.
public struct WebhookStore: Sendable {
    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    private static let columns = "id, url, event_types, status, created_at, updated_at"

    /// Starts at the feed's horizon: events that commit from now on. Refused past `limit`
    /// endpoints (`TenantLimits`).
    public func create(tenantId: UUID?, url: String, eventTypes: [String], secret: String, limit: Int) async throws -> WebhookEndpoint {
        try await StoreError.translating {
            try await pool.withTransaction { c in
                try TenantLimits.check(
                    c, .webhookEndpointsPerTenant, tenantId: tenantId, limit: limit,
                    held: "SELECT count(*)::int AS n FROM webhook_endpoints WHERE tenant_id IS NOT DISTINCT FROM $1", [tenantId])
                return try Self.decode(
                    c.query(
                        """
                        INSERT INTO webhook_endpoints (id, tenant_id, url, event_types, secret, cursor_xid)
                        VALUES ($1, $2, $3, $4, $5, gpb_event_horizon()) RETURNING \(Self.columns)
                        """,
                        [UUID.timeOrdered(), tenantId, url, eventTypes, secret])[0])
            }
        }
    }

    public func list(tenantId: UUID?) async throws -> [WebhookEndpoint] {
        try await StoreError.translating {
            try await pool.withConnection { c in
                try c.query(
                    "SELECT \(Self.columns) FROM webhook_endpoints WHERE tenant_id IS NOT DISTINCT FROM $1 ORDER BY created_at, id", [tenantId]
                ).map(Self.decode)
            }
        }
    }

    public func get(tenantId: UUID?, id: UUID) async throws -> WebhookEndpoint {
        try await StoreError.translating {
            try await pool.withConnection { c in
                guard let row = try c.query(
                    "SELECT \(Self.columns) FROM webhook_endpoints WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2", [id, tenantId]
                ).first else { throw Self.notFound(id) }
                return try Self.decode(row)
            }
        }
    }

    /// The endpoint, then its lanes, then (cascading) its deliveries: the lock order of
    /// the senders (migration 11), so a deletion never deadlocks with them.
    public func delete(tenantId: UUID?, id: UUID) async throws {
        try await StoreError.translating {
            try await pool.withTransaction { c in
                let rows = try c.query(
                    "SELECT 1 FROM webhook_endpoints WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2 FOR UPDATE", [id, tenantId])
                if rows.isEmpty { throw Self.notFound(id) }
                try c.query("DELETE FROM webhook_lanes WHERE endpoint_id = $1", [id])
                try c.query("DELETE FROM webhook_endpoints WHERE id = $1", [id])
            }
        }
    }

    /// The new secret signs from now on; the previous one too, for 24 hours.
    public func rotateSecret(tenantId: UUID?, id: UUID, secret: String) async throws -> WebhookEndpoint {
        try await StoreError.translating {
            try await pool.withConnection { c in
                guard let row = try c.query(
                    """
                    UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = now() + interval '24 hours',
                           secret = $3, updated_at = now()
                    WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2 RETURNING \(Self.columns)
                    """, [id, tenantId, secret]
                ).first else { throw Self.notFound(id) }
                return try Self.decode(row)
            }
        }
    }

    /// Newest first.
    public func deliveries(tenantId: UUID?, id: UUID, limit: Int) async throws -> [WebhookDelivery] {
        try await StoreError.translating {
            try await pool.withConnection { c in
                if try c.query("SELECT 1 FROM webhook_endpoints WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2", [id, tenantId]).isEmpty {
                    throw Self.notFound(id)
                }
                return try c.query(
                    """
                    SELECT id, message_id, event_type, allocation_id, status, attempts,
                           CASE WHEN status = 'pending' THEN next_attempt_at END AS next_attempt_at,
                           last_attempt_at, last_status, last_error, delivered_at, created_at
                    FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id DESC LIMIT $2
                    """, [id, limit]
                ).map { row in
                    WebhookDelivery(
                        id: try row.decode("id"), messageId: try row.decode("message_id"), eventType: try row.decode("event_type"),
                        allocationId: try row.decodeIfPresent("allocation_id"), status: try row.decode("status"),
                        attempts: try row.decode("attempts"), nextAttemptAt: try row.decodeIfPresent("next_attempt_at"),
                        lastAttemptAt: try row.decodeIfPresent("last_attempt_at"), lastStatus: try row.decodeIfPresent("last_status"),
                        lastError: try row.decodeIfPresent("last_error"), deliveredAt: try row.decodeIfPresent("delivered_at"),
                        createdAt: try row.decode("created_at"))
                }
            }
        }
    }

    // MARK: sending

    /// Makes deliveries of the events that became final (`gpb_webhook_dispatch`).
    public func dispatch(limit: Int = 1000) async throws -> Int {
        try await pool.withConnection { c in
            try c.query("SELECT gpb_webhook_dispatch($1) AS n", [limit])[0].decode("n")
        }
    }

    /// Claims due deliveries, each the oldest pending one of its allocation at its
    /// endpoint (its lane, migration 11), so that an allocation's events arrive in
    /// order; lanes come from an index in due order, so a claim costs the same however
    /// many deliveries wait. A claim lasts a minute: a broker that dies while sending
    /// leaves it to another after that.
    public func claim(limit: Int) async throws -> [ClaimedDelivery] {
        try await pool.withConnection { c in
            try c.query("SELECT * FROM gpb_webhook_claim($1)", [limit]).map { row in
                ClaimedDelivery(
                    id: try row.decode("id"), messageId: try row.decode("message_id"), payload: try row.decode("payload"),
                    attempts: try row.decode("attempts"), url: try row.decode("url"), secrets: try row.decode("secrets"),
                    age: .seconds(try row.decode("age", as: Double.self)))
            }
        }
    }

    /// Records attempts' outcomes in one transaction (`gpb_webhook_attempted`).
    public func record(_ outcomes: [AttemptOutcome]) async throws {
        guard !outcomes.isEmpty else { return }
        let json = JSONValue.array(outcomes.map { outcome in
            .object([
                "id": .number(Double(outcome.id)), "delivered": .bool(outcome.delivered),
                "status": outcome.status.map { .number(Double($0)) } ?? .null, "error": outcome.reason.map { .string($0) } ?? .null,
                "retryIn": outcome.retryIn.map { .number(Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18) } ?? .null,
            ])
        })
        try await pool.withConnection { c in
            try c.query("SELECT gpb_webhook_attempted($1::jsonb)", [PostgresJSON(rawJSON: String(decoding: json.encoded(), as: UTF8.self))])
        }
    }

    static func notFound(_ id: UUID) -> StoreError {
        .notFound("webhook endpoint '\(id.uuidString.lowercased())' not found")
    }

    static func decode(_ row: PostgresRow) throws -> WebhookEndpoint {
        WebhookEndpoint(
            id: try row.decode("id"), url: try row.decode("url"), eventTypes: try row.decode("event_types"),
            status: try row.decode("status"), createdAt: try row.decode("created_at"), updatedAt: try row.decode("updated_at"))
    }
}

extension WebhookStore {
    /// On the same connections as the tenants it serves.
    public init(sharingPoolOf tenants: TenantStore) {
        self.init(pool: tenants.pool)
    }
}
