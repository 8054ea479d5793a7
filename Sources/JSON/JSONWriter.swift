import Foundation

/// A value that writes its own JSON. The models' writers give byte for byte what their
/// `Encodable` conformance gives through `SortedJSONEncoder` (keys sorted, `nil` members
/// left out): through `Encodable`, the allocation answer and the row sent to the database
/// took a third of the broker's CPU time per grant. `SortedJSONEncoder` uses it wherever
/// it meets such a value. Members must be written in key order; `SortedJSONEncoderTests`
/// compares both forms.
public protocol JSONWritable {
    func write(to json: inout JSONWriter)
}

/// Writes JSON in one pass: the one place that spells JSON's strings and numbers, for
/// hand-written writers, `JSONValue` and `SortedJSONEncoder` alike. Separators are placed
/// by the writer: `key` before a member's value, nothing between array elements.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    public let date: (Date) -> String
    private var needsComma = false

    /// `date` writes a `Date` member; by default ISO 8601 with milliseconds in UTC.
    public init(date: @escaping (Date) -> String = JSONWriter.iso8601, capacity: Int = 1024) {
        self.date = date
        bytes.reserveCapacity(capacity)
    }

    /// `2024-05-01T12:00:00.250Z`.
    public static func iso8601(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt))
    }

    /// The document written so far, as text.
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = false
    }

    @inline(__always)
    private mutating func open(_ bracket: UInt8) {
        separate()
        bytes.append(bracket)
    }

    @inline(__always)
    private mutating func close(_ bracket: UInt8) {
        bytes.append(bracket)
        needsComma = true
    }

    /// A whole value already spelled.
    @inline(__always)
    private mutating func scalar(_ text: some Sequence<UInt8>) {
        separate()
        bytes.append(contentsOf: text)
        needsComma = true
    }

    public mutating func beginObject() { open(UInt8(ascii: "{")) }
    public mutating func endObject() { close(UInt8(ascii: "}")) }
    public mutating func beginArray() { open(UInt8(ascii: "[")) }
    public mutating func endArray() { close(UInt8(ascii: "]")) }

    /// A member's key; its value comes next.
    public mutating func key(_ key: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount))
        bytes.append(contentsOf: "\":".utf8)
    }

    /// A member's key that is not known at compile time: escaped as any string.
    public mutating func key(named key: String) {
        separate()
        Self.appendString(key, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
    }

    public mutating func value(_ value: String) {
        separate()
        Self.appendString(value, to: &bytes)
        needsComma = true
    }

    public mutating func value(_ value: Int) { scalar(String(value).utf8) }

    public mutating func value(_ value: Double) { scalar(Self.numberText(value).utf8) }

    public mutating func null() { scalar("null".utf8) }

    /// A document encoded before, written as it is.
    public mutating func raw(_ encoded: [UInt8]) { scalar(encoded) }

    public mutating func value(_ value: Bool) { scalar((value ? "true" : "false").utf8) }

    public mutating func value(_ value: Date) {
        self.value(date(value))
    }

    public mutating func value<T: RawRepresentable<String>>(_ value: T) {
        self.value(value.rawValue)
    }

    public mutating func value(_ value: some JSONWritable) {
        value.write(to: &self)
    }

    public mutating func value(_ values: [String]) {
        beginArray()
        for value in values { self.value(value) }
        endArray()
    }

    public mutating func value(_ values: [some JSONWritable]) {
        beginArray()
        for value in values { value.write(to: &self) }
        endArray()
    }

    /// Keys sorted, as `SortedJSONEncoder` writes a dictionary.
    public mutating func value(_ members: [String: String]) {
        beginObject()
        for (key, value) in members.sorted(by: { $0.key < $1.key }) {
            self.key(named: key)
            self.value(value)
        }
        endObject()
    }

    /// `key` and `value`, both left out when `value` is nil (as `encodeIfPresent` does).
    public mutating func member(_ key: StaticString, _ value: String?) {
        if let value { self.key(key); self.value(value) }
    }

    public mutating func member(_ key: StaticString, _ value: Int?) {
        if let value { self.key(key); self.value(value) }
    }

    public mutating func member(_ key: StaticString, _ value: Double?) {
        if let value { self.key(key); self.value(value) }
    }

    public mutating func member(_ key: StaticString, _ value: Bool?) {
        if let value { self.key(key); self.value(value) }
    }

    public mutating func member(_ key: StaticString, _ value: Date?) {
        if let value { self.key(key); self.value(value) }
    }

    public mutating func member<T: RawRepresentable<String>>(_ key: StaticString, _ value: T?) {
        if let value { self.key(key); self.value(value) }
    }

    public mutating func member(_ key: StaticString, _ value: (some JSONWritable)?) {
        if let value { self.key(key); self.value(value) }
    }

    public mutating func member(_ key: StaticString, _ values: [String]?) {
        if let values { self.key(key); self.value(values) }
    }

    public mutating func member(_ key: StaticString, _ values: [some JSONWritable]) {
        self.key(key)
        value(values)
    }

    public mutating func member(_ key: StaticString, _ members: [String: String]) {
        self.key(key)
        value(members)
    }

    // MARK: spelling

    /// A number's text: integers without a fraction, others in Swift's shortest
    /// round-tripping form (0.1, 1e+300), as JSONEncoder writes them; `null` when not finite.
    public static func numberText(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        if value == value.rounded(), abs(value) < 9_007_199_254_740_992 {
            return String(Int64(value))
        }
        return "\(value)"
    }

    /// A string, quoted and escaped as JSONEncoder with `.withoutEscapingSlashes` does.
    public static func appendString(_ string: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        if string.utf8.allSatisfy({ $0 >= 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
            out.append(contentsOf: string.utf8)
            out.append(UInt8(ascii: "\""))
            return
        }
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
            case 0x0A: out.append(contentsOf: "\\n".utf8)
            case 0x0D: out.append(contentsOf: "\\r".utf8)
            case 0x09: out.append(contentsOf: "\\t".utf8)
            case 0x00..<0x20:
                let hex = String(byte, radix: 16)
                out.append(contentsOf: ("\\u" + String(repeating: "0", count: 4 - hex.count) + hex).utf8)
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
