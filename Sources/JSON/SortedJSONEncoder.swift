import Foundation

/// Encodes an `Encodable` value as JSON bytes: keys sorted, slashes not escaped, as
/// JSONEncoder with `.sortedKeys` and `.withoutEscapingSlashes` writes them. It exists
/// for speed: JSONEncoder checks every value against Foundation's special types on the
/// way and took about a quarter of a grant's CPU time. This one checks for `Date` only
/// (written by `date`) and for `JSONWritable` values (which write themselves), and writes
/// scalars as bytes at once (spelled by `JSONWriter`); only objects wait, to be written in key order when the whole
/// value is done.
public struct SortedJSONEncoder: Sendable {
    public let date: @Sendable (Date) -> String

    public init(date: @escaping @Sendable (Date) -> String) {
        self.date = date
    }

    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        if let written = Self.written(value, date: date) { return written }
        let node = Node()
        try Self.box(value, into: node, encoder: nil, key: nil, date: date)
        var out: [UInt8] = []
        out.reserveCapacity(node.bytes.count + 64)
        node.write(into: &out)
        return out
    }

    public func encodeText<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try encode(value), as: UTF8.self)
    }

    /// The bytes of a value that writes itself; nil for any other.
    private static func written<T: Encodable>(_ value: T, date: @escaping (Date) -> String) -> [UInt8]? {
        // Checked on the type, not the value: a value cast boxes every value on the way.
        guard T.self is any JSONWritable.Type, let writable = value as? any JSONWritable else { return nil }
        var json = JSONWriter(date: date)
        writable.write(to: &json)
        return json.bytes
    }

    /// Encodes `value` as the whole of `node`.
    static func box<T: Encodable>(
        _ value: T, into node: Node, encoder parent: ValueEncoder?, key: (any CodingKey)?, date: @escaping (Date) -> String
    ) throws {
        // Checked on the type, not the value: a value cast boxes every value on the way.
        if T.self == Date.self { return node.setScalar { JSONWriter.appendString(date(value as! Date), to: &$0) } }
        if let written = written(value, date: date) { return node.setScalar { $0.append(contentsOf: written) } }
        // The containers' own methods take Int and Double; the other numeric types come
        // here, and encoding them through their Encodable would come back here forever.
        if T.self is any BinaryInteger.Type, let value = value as? any BinaryInteger {
            return node.setScalar { $0.append(contentsOf: String(value).utf8) }
        }
        if T.self is any BinaryFloatingPoint.Type, let value = value as? any BinaryFloatingPoint {
            return node.setScalar { $0.append(contentsOf: JSONWriter.numberText(Double(value)).utf8) }
        }
        try value.encode(to: ValueEncoder(node: node, parent: parent, key: key, date: date))
    }
}

/// One value being encoded. Scalars are written into `bytes` as they come; an array's
/// or object's entries point into `bytes` or at a child node for a nested value.
final class Node {
    enum Kind { case empty, scalar, array, object }

    struct Entry {
        var key: String?
        var bytes: Range<Int>
        var child: Node?
    }

    private(set) var kind = Kind.empty
    private(set) var bytes: [UInt8] = []
    private var entries: [Entry] = []

    func setScalar(_ write: (inout [UInt8]) -> Void) {
        kind = .scalar
        bytes.removeAll(keepingCapacity: true)
        entries.removeAll()
        write(&bytes)
    }

    /// Makes this node an array or object unless it already is one (containers asked
    /// for twice add to the same value).
    func become(_ container: Kind) {
        guard kind != container else { return }
        kind = container
        bytes.removeAll(keepingCapacity: true)
        entries.removeAll()
    }

    var count: Int { entries.count }

    func add(_ key: String?, _ write: (inout [UInt8]) -> Void) {
        let start = bytes.count
        write(&bytes)
        entries.append(Entry(key: key, bytes: start..<bytes.count, child: nil))
    }

    func addChild(_ key: String?) -> Node {
        let child = Node()
        entries.append(Entry(key: key, bytes: 0..<0, child: child))
        return child
    }

    func write(into out: inout [UInt8]) {
        switch kind {
        case .empty:
            out.append(contentsOf: "{}".utf8)  // as JSONEncoder writes a value that encoded nothing
        case .scalar:
            out.append(contentsOf: bytes)
        case .array:
            out.append(UInt8(ascii: "["))
            for (index, entry) in entries.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                write(entry, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object:
            out.append(UInt8(ascii: "{"))
            // A key encoded twice keeps its last value, as a dictionary would.
            var ordered = entries.enumerated().sorted { a, b in
                a.element.key! != b.element.key! ? a.element.key! < b.element.key! : a.offset < b.offset
            }.map(\.element)
            ordered = ordered.indices.filter { $0 + 1 == ordered.count || ordered[$0 + 1].key != ordered[$0].key }
                .map { ordered[$0] }
            for (index, entry) in ordered.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                JSONWriter.appendString(entry.key!, to: &out)
                out.append(UInt8(ascii: ":"))
                write(entry, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private func write(_ entry: Entry, into out: inout [UInt8]) {
        if let child = entry.child {
            child.write(into: &out)
        } else {
            out.append(contentsOf: bytes[entry.bytes])
        }
    }
}

final class ValueEncoder: Encoder {
    let node: Node
    let date: (Date) -> String
    /// The coding path, kept as links and built only if someone asks for it.
    private let parent: ValueEncoder?
    private let key: (any CodingKey)?
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(node: Node, parent: ValueEncoder?, key: (any CodingKey)?, date: @escaping (Date) -> String) {
        self.node = node
        self.parent = parent
        self.key = key
        self.date = date
    }

    var codingPath: [any CodingKey] {
        (parent?.codingPath ?? []) + (key.map { [$0] } ?? [])
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        node.become(.object)
        return KeyedEncodingContainer(KeyedContainer<Key>(encoder: self))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        node.become(.array)
        return UnkeyedContainer(encoder: self)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleContainer(encoder: self)
    }

    /// An encoder for a nested value, written into `child`.
    func nested(_ child: Node, key: (any CodingKey)?) -> ValueEncoder {
        ValueEncoder(node: child, parent: self, key: key, date: date)
    }

    func box<T: Encodable>(_ value: T, into child: Node, key: (any CodingKey)?) throws {
        try SortedJSONEncoder.box(value, into: child, encoder: self, key: key, date: date)
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let encoder: ValueEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }

    mutating func encodeNil(forKey key: Key) throws { encoder.node.add(key.stringValue) { $0.append(contentsOf: "null".utf8) } }
    mutating func encode(_ value: Bool, forKey key: Key) throws {
        encoder.node.add(key.stringValue) { $0.append(contentsOf: (value ? "true" : "false").utf8) }
    }
    mutating func encode(_ value: String, forKey key: Key) throws {
        encoder.node.add(key.stringValue) { JSONWriter.appendString(value, to: &$0) }
    }
    mutating func encode(_ value: Double, forKey key: Key) throws {
        encoder.node.add(key.stringValue) { $0.append(contentsOf: JSONWriter.numberText(value).utf8) }
    }
    mutating func encode(_ value: Int, forKey key: Key) throws {
        encoder.node.add(key.stringValue) { $0.append(contentsOf: String(value).utf8) }
    }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try encoder.box(value, into: encoder.node.addChild(key.stringValue), key: key)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        encoder.nested(encoder.node.addChild(key.stringValue), key: key).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        encoder.nested(encoder.node.addChild(key.stringValue), key: key).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder { encoder.nested(encoder.node.addChild("super"), key: nil) }
    mutating func superEncoder(forKey key: Key) -> any Encoder {
        encoder.nested(encoder.node.addChild(key.stringValue), key: key)
    }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let encoder: ValueEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }
    var count: Int { encoder.node.count }

    mutating func encodeNil() throws { encoder.node.add(nil) { $0.append(contentsOf: "null".utf8) } }
    mutating func encode(_ value: Bool) throws { encoder.node.add(nil) { $0.append(contentsOf: (value ? "true" : "false").utf8) } }
    mutating func encode(_ value: String) throws { encoder.node.add(nil) { JSONWriter.appendString(value, to: &$0) } }
    mutating func encode(_ value: Double) throws { encoder.node.add(nil) { $0.append(contentsOf: JSONWriter.numberText(value).utf8) } }
    mutating func encode(_ value: Int) throws { encoder.node.add(nil) { $0.append(contentsOf: String(value).utf8) } }
    mutating func encode<T: Encodable>(_ value: T) throws {
        try encoder.box(value, into: encoder.node.addChild(nil), key: nil)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        encoder.nested(encoder.node.addChild(nil), key: nil).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        encoder.nested(encoder.node.addChild(nil), key: nil).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder { encoder.nested(encoder.node.addChild(nil), key: nil) }
}

private struct SingleContainer: SingleValueEncodingContainer {
    let encoder: ValueEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }

    mutating func encodeNil() throws { encoder.node.setScalar { $0.append(contentsOf: "null".utf8) } }
    mutating func encode(_ value: Bool) throws { encoder.node.setScalar { $0.append(contentsOf: (value ? "true" : "false").utf8) } }
    mutating func encode(_ value: String) throws { encoder.node.setScalar { JSONWriter.appendString(value, to: &$0) } }
    mutating func encode(_ value: Double) throws { encoder.node.setScalar { $0.append(contentsOf: JSONWriter.numberText(value).utf8) } }
    mutating func encode(_ value: Int) throws { encoder.node.setScalar { $0.append(contentsOf: String(value).utf8) } }
    mutating func encode<T: Encodable>(_ value: T) throws {
        // The single value is the whole of this node: its encoding writes here.
        try SortedJSONEncoder.box(value, into: encoder.node, encoder: encoder, key: nil, date: encoder.date)
    }
}
