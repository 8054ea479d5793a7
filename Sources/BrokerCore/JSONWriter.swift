import Foundation

/// A value that writes its own JSON, byte for byte what its `Encodable` conformance
/// gives through `SortedJSONEncoder` (keys sorted, `nil` members left out), for the
/// documents every grant writes: through `Encodable`, the allocation answer and the
/// row sent to the database took a third of the broker's CPU time per grant.
/// `SortedJSONEncoder` uses it wherever it meets such a value. Members must be written
/// in key order; `SortedJSONEncoderTests` compares both forms.
public protocol JSONWritable: Encodable {
    func write(to json: inout JSONWriter)
}

/// Writes JSON in one pass. Separators are placed by the writer: `key` before a
/// member's value, nothing between array elements.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    public let date: (Date) -> String
    private var needsComma = false

    public init(date: @escaping (Date) -> String) {
        self.date = date
        bytes.reserveCapacity(1024)
    }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = false
    }

    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
    }

    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
    }

    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// A member's key; its value comes next.
    public mutating func key(_ key: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount))
        bytes.append(contentsOf: "\":".utf8)
    }

    public mutating func value(_ value: String) {
        separate()
        JSONValue.writeString(value, into: &bytes)
        needsComma = true
    }

    public mutating func value(_ value: Int) {
        separate()
        bytes.append(contentsOf: String(value).utf8)
        needsComma = true
    }

    public mutating func value(_ value: Double) {
        separate()
        bytes.append(contentsOf: JSONValue.format(value).utf8)
        needsComma = true
    }

    public mutating func value(_ value: Bool) {
        separate()
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
        needsComma = true
    }

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
            separate()
            JSONValue.writeString(key, into: &bytes)
            bytes.append(UInt8(ascii: ":"))
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
}

extension RegionSelector: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("kind", kind)
        json.member("labels", labels)
        json.endObject()
    }
}

extension PlacementUnit: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("max", max)
        json.member("regions", regions)
        json.member("selector", selector)
        json.endObject()
    }
}

extension PlacementPolicy: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        json.key("strategy")
        json.value(strategy)
        json.member("units", units)
        json.endObject()
    }
}

extension ModelSpec: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("batchSize", batchSize)
        json.member("contextLength", contextLength)
        json.member("hiddenSize", hiddenSize)
        json.member("kvCacheGiB", kvCacheGiB)
        json.member("layers", layers)
        json.member("parameters", parameters)
        json.member("precision", precision)
        json.member("usableFraction", usableFraction)
        json.endObject()
    }
}

extension ComputeShape: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("computeClass", computeClass)
        json.member("cpu", cpu)
        json.member("gpuCount", gpuCount)
        json.member("gpuSeries", gpuSeries)
        json.member("instanceType", instanceType)
        json.member("memoryGiB", memoryGiB)
        json.member("qos", qos)
        json.member("requiredGPUMemoryGiB", requiredGPUMemoryGiB)
        json.endObject()
    }
}

extension AllocationRequest: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("allOrNothing", allOrNothing)
        json.member("labels", labels)
        json.member("leaseSeconds", leaseSeconds)
        json.member("model", model)
        json.member("placement", placement)
        json.member("queue", queue)
        json.member("queueTimeoutSeconds", queueTimeoutSeconds)
        json.member("region", region)
        json.member("replicas", replicas)
        json.member("shape", shape)
        json.endObject()
    }
}

extension PlacementDecision: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("reason", reason)
        json.member("region", region)
        json.member("replicas", replicas)
        json.endObject()
    }
}
