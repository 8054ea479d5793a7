import Foundation

/// Encodes an `Encodable` value as a `JSONValue`, to be written with `encoded()`:
/// keys sorted, slashes not escaped, as JSONEncoder with `.sortedKeys` and
/// `.withoutEscapingSlashes` writes them. It exists for speed: JSONEncoder checks
/// every value against Foundation's special types on the way and took about a
/// quarter of a grant's CPU time; this checks for `Date` only, written by `date`.
public struct JSONValueEncoder: Sendable {
    public let date: @Sendable (Date) -> String

    public init(date: @escaping @Sendable (Date) -> String) {
        self.date = date
    }

    public func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        try JSONValueEncoder.box(value, date: date, codingPath: [])
    }

    static func box<T: Encodable>(_ value: T, date: @escaping (Date) -> String, codingPath: [any CodingKey]) throws -> JSONValue {
        // Checked on the type, not the value: a value cast boxes every value on the way.
        if T.self == JSONValue.self { return value as! JSONValue }
        if T.self == Date.self { return .string(date(value as! Date)) }
        // The containers' own methods take Int and Double; the other numeric types come
        // here, and encoding them through their Encodable would come back here forever.
        if T.self is any BinaryInteger.Type, let value = value as? any BinaryInteger { return .number(Double(value)) }
        if T.self is any BinaryFloatingPoint.Type, let value = value as? any BinaryFloatingPoint {
            return .number(Double(value))
        }
        let encoder = ValueEncoder(date: date, codingPath: codingPath)
        try value.encode(to: encoder)
        return encoder.slot.resolved()
    }
}

/// What one encoder produced. Nested containers and super encoders write into slots
/// of their own, placed into this one's value when it is read.
private final class Slot {
    var value: JSONValue?
    private var children: [(key: String?, index: Int?, slot: Slot)] = []

    func update(_ change: (inout JSONValue) -> Void) {
        var current = value ?? .null
        value = nil  // keep the payload uniquely referenced while it changes
        change(&current)
        value = current
    }

    /// A slot for the member `key` of this object.
    func child(forKey key: String) -> Slot {
        let child = Slot()
        children.append((key, nil, child))
        return child
    }

    /// A slot for the next element of this array.
    func nextElement() -> Slot {
        let child = Slot()
        var index = 0
        update { array in
            if case .array(var elements) = array {
                array = .null
                index = elements.count
                elements.append(.null)
                array = .array(elements)
            }
        }
        children.append((nil, index, child))
        return child
    }

    func resolved() -> JSONValue {
        var result = value ?? .object([:])
        for child in children {
            let value = child.slot.resolved()
            switch result {
            case .object(var members):
                result = .null
                members[child.key ?? "super"] = value
                result = .object(members)
            case .array(var elements):
                result = .null
                elements[child.index ?? 0] = value
                result = .array(elements)
            default:
                break
            }
        }
        return result
    }
}

private final class ValueEncoder: Encoder {
    let date: (Date) -> String
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    let slot: Slot

    init(date: @escaping (Date) -> String, codingPath: [any CodingKey], slot: Slot = Slot()) {
        self.date = date
        self.codingPath = codingPath
        self.slot = slot
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .object? = slot.value {} else { slot.value = .object([:]) }
        return KeyedEncodingContainer(KeyedContainer<Key>(slot: slot, date: date, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .array? = slot.value {} else { slot.value = .array([]) }
        return UnkeyedContainer(slot: slot, date: date, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleContainer(slot: slot, date: date, codingPath: codingPath)
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let slot: Slot
    let date: (Date) -> String
    let codingPath: [any CodingKey]

    private func set(_ value: JSONValue, _ key: Key) {
        slot.update { object in
            if case .object(var members) = object {
                object = .null
                members[key.stringValue] = value
                object = .object(members)
            }
        }
    }

    mutating func encodeNil(forKey key: Key) throws { set(.null, key) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { set(.bool(value), key) }
    mutating func encode(_ value: String, forKey key: Key) throws { set(.string(value), key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { set(.number(value), key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { set(.number(Double(value)), key) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        set(try JSONValueEncoder.box(value, date: date, codingPath: codingPath + [key]), key)
    }

    private func nested(_ key: Key?) -> ValueEncoder {
        ValueEncoder(
            date: date, codingPath: codingPath + (key.map { [$0] } ?? []),
            slot: slot.child(forKey: key?.stringValue ?? "super"))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        nested(key).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        nested(key).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder { nested(nil) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { nested(key) }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let slot: Slot
    let date: (Date) -> String
    let codingPath: [any CodingKey]
    var count: Int {
        if case .array(let elements)? = slot.value { return elements.count }
        return 0
    }

    private func append(_ value: JSONValue) {
        slot.update { array in
            if case .array(var elements) = array {
                array = .null
                elements.append(value)
                array = .array(elements)
            }
        }
    }

    mutating func encodeNil() throws { append(.null) }
    mutating func encode(_ value: Bool) throws { append(.bool(value)) }
    mutating func encode(_ value: String) throws { append(.string(value)) }
    mutating func encode(_ value: Double) throws { append(.number(value)) }
    mutating func encode(_ value: Int) throws { append(.number(Double(value))) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        append(try JSONValueEncoder.box(value, date: date, codingPath: codingPath))
    }

    private func nested() -> ValueEncoder {
        ValueEncoder(date: date, codingPath: codingPath, slot: slot.nextElement())
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        nested().container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer { nested().unkeyedContainer() }

    mutating func superEncoder() -> any Encoder { nested() }
}

private struct SingleContainer: SingleValueEncodingContainer {
    let slot: Slot
    let date: (Date) -> String
    let codingPath: [any CodingKey]

    mutating func encodeNil() throws { slot.value = .null }
    mutating func encode(_ value: Bool) throws { slot.value = .bool(value) }
    mutating func encode(_ value: String) throws { slot.value = .string(value) }
    mutating func encode(_ value: Double) throws { slot.value = .number(value) }
    mutating func encode(_ value: Int) throws { slot.value = .number(Double(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        slot.value = try JSONValueEncoder.box(value, date: date, codingPath: codingPath)
    }
}
