import BrokerCore
import Foundation
import PostgresClient

/// One page of a list and the cursor of the next (nil on the last page). Every list is
/// read through an index that matches its filters and order (migration 5), with the
/// cursor as the index's lower bound, so a page costs the same however long the list.
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var nextCursor: String?

    /// `rows` were read with `limit + 1`: the extra row only says that more follow.
    static func of(_ rows: PostgresResult, limit: Int, cursor: (PostgresRow) throws -> String, item: ([PostgresRow]) throws -> [Item]) throws -> Page {
        let page = Array(rows.prefix(limit))
        return Page(items: try item(page), nextCursor: rows.count > limit ? try cursor(page[page.count - 1]) : nil)
    }
}

extension TenantStore {
    /// Tenants, newest first; the cursor is the id of the last one seen.
    public func list(limit: Int, after cursor: UUID?) async throws -> Page<Tenant> {
        let after = cursor == nil ? "" : "WHERE (created_at, id) < (SELECT created_at, id FROM tenants WHERE id = $2)"
        return try await StoreError.translating {
            try await pool.withConnection { c in
                try Page.of(
                    try c.query(
                        "SELECT \(Self.columns) FROM tenants \(after) ORDER BY created_at DESC, id DESC LIMIT $1",
                        cursor.map { [limit + 1, $0] } ?? [limit + 1]),
                    limit: limit, cursor: { (try $0.decode("id") as UUID).lowercased },
                    item: { try $0.map(Self.decode) })
            }
        }
    }
}

extension InventoryStore {
    /// Regions in id order (a catalogue of places, read through its primary key); the
    /// cursor is the id of the last one seen.
    public func regions(limit: Int, after cursor: String?) async throws -> Page<Region> {
        try await StoreError.translating {
            try await pool.withConnection { c in
                try Page.of(
                    try c.query(
                        "SELECT \(RegionColumns.list) FROM regions r WHERE r.id > $1 ORDER BY r.id LIMIT $2",
                        [cursor ?? "", limit + 1]),
                    limit: limit, cursor: { try $0.decode("region_id") }, item: { try $0.map(RegionColumns.decode) })
            }
        }
    }
}
