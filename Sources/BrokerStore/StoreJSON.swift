import JSON
import PostgresClient

/// The JSON the store writes into columns and statement arguments: the same writer as the
/// API's answers, dates in PostgreSQL's timestamp form (`PostgresRow.decodeJSON` reads them).
enum StoreJSON {
    static let encoder = SortedJSONEncoder(date: PostgresTimestamp.format)

    static func bytes(_ value: some JSONWritable) -> [UInt8] {
        var json = JSONWriter(date: PostgresTimestamp.format)
        value.write(to: &json)
        return json.bytes
    }
}

extension PostgresJSON {
    init<T: Encodable>(_ value: T) throws {
        self.init(rawJSON: try StoreJSON.encoder.encodeText(value))
    }

    init(writing value: some JSONWritable) {
        self.init(rawJSON: String(decoding: StoreJSON.bytes(value), as: UTF8.self))
    }
}
