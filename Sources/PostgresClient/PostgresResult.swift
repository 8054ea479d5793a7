import CLibPQ
import Foundation

/// The rows of one statement, copied out of the `PGresult` (which is cleared right away).
public struct PostgresResult: Sendable, RandomAccessCollection {
    final class Storage: Sendable {
        let columns: [String]
        let columnIndex: [String: Int]
        let values: [String?]  // row-major, rowCount * columns.count
        let rowCount: Int

        init(columns: [String], values: [String?], rowCount: Int) {
            self.columns = columns
            var index: [String: Int] = [:]
            for (position, name) in columns.enumerated() where index[name] == nil {
                index[name] = position
            }
            self.columnIndex = index
            self.values = values
            self.rowCount = rowCount
        }
    }

    let storage: Storage

    /// Rows changed by an INSERT/UPDATE/DELETE/MERGE (or returned by SELECT), from `PQcmdTuples`.
    public let affectedRows: Int

    /// Column names in result order.
    public var columns: [String] { storage.columns }

    public var startIndex: Int { 0 }
    public var endIndex: Int { storage.rowCount }

    public subscript(position: Int) -> PostgresRow {
        precondition(position >= 0 && position < storage.rowCount, "row index out of range")
        return PostgresRow(storage: storage, row: position)
    }

    /// Copies everything out of `result` with `PQntuples`, `PQnfields`, `PQfname`,
    /// `PQgetisnull`, `PQgetvalue`, `PQgetlength` and `PQcmdTuples`. Does not clear it.
    init(copying result: OpaquePointer) {
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        var columns: [String] = []
        columns.reserveCapacity(columnCount)
        for column in 0..<columnCount {
            columns.append(PQfname(result, Int32(column)).map { String(cString: $0) } ?? "?column?")
        }
        var values: [String?] = []
        values.reserveCapacity(rowCount * columnCount)
        for row in 0..<rowCount {
            for column in 0..<columnCount {
                if PQgetisnull(result, Int32(row), Int32(column)) != 0 {
                    values.append(nil)
                } else {
                    let length = Int(PQgetlength(result, Int32(row), Int32(column)))
                    let pointer = PQgetvalue(result, Int32(row), Int32(column))!
                    values.append(String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self))
                }
            }
        }
        self.storage = Storage(columns: columns, values: values, rowCount: rowCount)
        let tuples = PQcmdTuples(result).map { String(cString: $0) } ?? ""
        self.affectedRows = Int(tuples) ?? 0
    }
}

/// One row of a `PostgresResult`; columns are looked up by name.
public struct PostgresRow: Sendable {
    let storage: PostgresResult.Storage
    let row: Int

    private func text(_ column: String) throws -> String? {
        guard let index = storage.columnIndex[column] else {
            throw PostgresError.decoding("no column named \(column)")
        }
        return storage.values[row * storage.columns.count + index]
    }

    /// Decodes `column`; throws `.decoding` when it is NULL, missing, or malformed.
    public func decode<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        guard let text = try text(column) else {
            throw PostgresError.decoding("column \(column) is NULL")
        }
        do {
            return try T(postgresText: text)
        } catch var error as PostgresError {
            error.message = "column \(column): \(error.message)"
            throw error
        }
    }

    /// Decodes `column`, or returns nil when it is NULL.
    public func decodeIfPresent<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T? {
        guard try text(column) != nil else { return nil }
        return try decode(column, as: T.self)
    }

    /// Decodes a `json`/`jsonb` column with `PostgresJSON.makeDecoder()`.
    public func decodeJSON<T: Decodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        guard let text = try text(column) else {
            throw PostgresError.decoding("column \(column) is NULL")
        }
        do {
            return try PostgresJSON.makeDecoder().decode(T.self, from: Data(text.utf8))
        } catch {
            throw PostgresError.decoding("column \(column): invalid JSON for \(T.self): \(error)")
        }
    }

    /// True when the column is NULL or does not exist.
    public func isNull(_ column: String) -> Bool {
        guard let index = storage.columnIndex[column] else { return true }
        return storage.values[row * storage.columns.count + index] == nil
    }
}
