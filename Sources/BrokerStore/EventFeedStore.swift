import Foundation
import PostgresClient

/// A place in the ledger feed (migration 6): rows are taken in (xid, seq) order up
/// to the horizon below which every transaction has finished, so nothing committing
/// later can land behind a position already passed. Written `<xid>-<seq>`.
public struct FeedPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var xid: Int64
    public var seq: Int64

    public init(xid: Int64, seq: Int64) {
        self.xid = xid
        self.seq = seq
    }

    /// Parses `<xid>-<seq>`, as an event's id reads.
    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ (1...18).contains($0.count) && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
            let xid = Int64(parts[0]), let seq = Int64(parts[1])
        else { return nil }
        self.init(xid: xid, seq: seq)
    }

    public var description: String { "\(xid)-\(seq)" }

    public static func < (a: FeedPosition, b: FeedPosition) -> Bool {
        (a.xid, a.seq) < (b.xid, b.seq)
    }
}

/// One event of the feed, its body already JSON (the webhook payload's shape): a
/// ledger row (`allocation.<kind>`) or, for the admin only, an inventory change
/// (`region.<verb>`, `pool.<verb>`: no tenant, no allocation).
public struct FeedEvent: Sendable {
    public var position: FeedPosition
    public var tenantId: UUID?
    public var allocationId: UUID?
    public var type: String
    public var json: String
}

public struct EventFeedStore: Sendable {
    let pool: PostgresPool

    public init(sharingPoolOf tenants: TenantStore) {
        pool = tenants.pool
    }

    /// Events after `after` (of one tenant, one allocation, or all) up to the horizon,
    /// at most `limit`, and the position a reader has reached once it took them: the
    /// last one's, or the horizon when fewer than `limit` came. The whole feed (no
    /// tenant, no allocation: the admin's) also carries the inventory's events.
    public func read(after: FeedPosition, tenant: UUID?, allocation: UUID?, limit: Int) async throws
        -> (events: [FeedEvent], reached: FeedPosition)
    {
        try await StoreError.translating {
            try await pool.withConnection { c in
                // Its own statement: what was final then is final in the next one's snapshot too.
                let horizon: Int64 = try c.query("SELECT gpb_event_horizon() AS h")[0].decode("h")
                let events = try c.query(
                    """
                    (SELECT l.xid, l.seq, a.tenant_id, l.allocation_id, 'allocation.' || l.kind AS type,
                            gpb_event_json(l)::text AS json
                     FROM ledger l LEFT JOIN allocations a ON a.id = l.allocation_id
                     WHERE l.xid >= $1 AND l.xid < $3 AND (l.xid, l.seq) > ($1, $2)
                       AND ($4::uuid IS NULL OR a.tenant_id = $4) AND ($5::uuid IS NULL OR l.allocation_id = $5)
                     ORDER BY l.xid, l.seq LIMIT $6)
                    UNION ALL
                    (SELECT e.xid, e.seq, NULL, NULL, e.type, gpb_inventory_event_json(e)::text
                     FROM inventory_events e
                     WHERE $4::uuid IS NULL AND $5::uuid IS NULL
                       AND e.xid >= $1 AND e.xid < $3 AND (e.xid, e.seq) > ($1, $2)
                     ORDER BY e.xid, e.seq LIMIT $6)
                    ORDER BY xid, seq LIMIT $6
                    """, [after.xid, after.seq, horizon, tenant, allocation, limit]
                ).map { row in
                    FeedEvent(
                        position: FeedPosition(xid: try row.decode("xid"), seq: try row.decode("seq")),
                        tenantId: try row.decodeIfPresent("tenant_id"), allocationId: try row.decodeIfPresent("allocation_id"),
                        type: try row.decode("type"), json: try row.decode("json"))
                }
                let reached = events.count < limit
                    ? max(after, FeedPosition(xid: horizon, seq: 0)) : events[events.count - 1].position
                return (events, reached)
            }
        }
    }

    /// The feed's end now: reading after it gives what commits from now on.
    public func horizon() async throws -> FeedPosition {
        try await StoreError.translating {
            try await pool.withConnection { c in
                FeedPosition(xid: try c.query("SELECT gpb_event_horizon() AS h")[0].decode("h"), seq: 0)
            }
        }
    }

    /// Whether the allocation is the tenant's.
    public func owns(tenant: UUID, allocation: UUID) async throws -> Bool {
        try await StoreError.translating {
            try await pool.withConnection { c in
                !(try c.query("SELECT 1 FROM allocations WHERE id = $1 AND tenant_id = $2", [allocation, tenant]).isEmpty)
            }
        }
    }
}
