import BrokerCore
import BrokerStore
import Foundation
import MicroHTTP

/// One page of a list as answered: `{"<items>": [...], "nextCursor": ...}`, with
/// `nextCursor` null on the last page, never absent.
struct ListPage<Item: Encodable & Sendable>: Encodable {
    var name: String
    var page: Page<Item>

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: MemberName.self)
        try c.encode(page.items, forKey: MemberName(stringValue: name))
        try c.encode(page.nextCursor, forKey: MemberName(stringValue: "nextCursor"))
    }
}

/// `limit` and `cursor` of a list's query, and the list's own filters; anything else is
/// refused with 422, like a malformed value.
struct PageQuery {
    var limit = 20
    var cursor: String?
    var filters: [String: String] = [:]

    static func parse(_ query: [String: String], filters: Set<String> = []) throws(ValidationFailure) -> PageQuery {
        var result = PageQuery()
        var errors: [FieldError] = []
        for (name, value) in query.sorted(by: { $0.key < $1.key }) {
            switch name {
            case "limit":
                if let limit = Int(value), (1...100).contains(limit) {
                    result.limit = limit
                } else {
                    errors.append(FieldError(field: "limit", message: "must be an integer from 1 to 100"))
                }
            case "cursor":
                result.cursor = value
            case _ where filters.contains(name):
                result.filters[name] = value
            default:
                errors.append(FieldError(field: name, message: "unknown query parameter"))
            }
        }
        if !errors.isEmpty { throw ValidationFailure(errors: errors) }
        return result
    }

    /// The cursor as `decode` reads it: nil without one; 422 when it is not one this API gave.
    func cursor<T>(_ decode: (String) -> T?) throws(ValidationFailure) -> T? {
        guard let cursor else { return nil }
        guard let value = decode(cursor) else {
            throw ValidationFailure(errors: [FieldError(field: "cursor", message: "is not a cursor this API returned")])
        }
        return value
    }
}
