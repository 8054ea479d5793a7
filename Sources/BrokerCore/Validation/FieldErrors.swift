import Foundation
import JSON

/// One invalid field: a path such as `placement.units[1].max` or `labels.app`, and why.
public struct FieldError: Codable, Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}

/// Every invalid field of one input (never only the first). Answered as 422.
public struct ValidationFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var errors: [FieldError]

    public init(errors: [FieldError]) { self.errors = errors }
    public init(field: String, message: String) { self.errors = [FieldError(field: field, message: message)] }

    public var description: String { errors.map(\.description).joined(separator: "; ") }
}

/// Collects field errors while a parser walks its input.
public final class FieldErrorCollector {
    public private(set) var errors: [FieldError] = []

    public init() {}

    public func add(_ field: String, _ message: String) {
        errors.append(FieldError(field: field, message: message))
    }

    public var isEmpty: Bool { errors.isEmpty }

    /// The built value when nothing was reported, else the failure.
    public func result<T>(_ value: T?) throws(ValidationFailure) -> T {
        if let value, errors.isEmpty { return value }
        if errors.isEmpty { add("", "invalid") }  // a parser returned nil without saying why
        throw ValidationFailure(errors: errors)
    }

    /// Reads `value` as an object at `path` ("" for the document root).
    public func object(_ value: JSONValue, at path: String = "") -> ObjectReader? {
        guard case .object(let members) = value else {
            add(path, "must be an object, not \(value.typeName)")
            return nil
        }
        return ObjectReader(path: path, members: members, errors: self)
    }
}

/// Field-path helpers.
public enum FieldPath {
    public static func child(_ parent: String, _ key: String) -> String {
        parent.isEmpty ? key : "\(parent).\(key)"
    }

    public static func index(_ parent: String, _ index: Int) -> String {
        "\(parent)[\(index)]"
    }
}

/// Shared validation rules.
public enum Rules {
    /// Region and pool ids: `^[a-z][a-z0-9-]{0,62}$`.
    public static func isRegionId(_ s: String) -> Bool {
        matches(s, first: { $0.isLowercaseASCIILetter }, rest: { $0.isLowercaseASCIILetter || $0.isASCIIDigit || $0 == UInt8(ascii: "-") })
    }

    /// Policy names: `^[a-z0-9][a-z0-9-]{0,62}$`.
    public static func isPolicyName(_ s: String) -> Bool {
        matches(s, first: { $0.isLowercaseASCIILetter || $0.isASCIIDigit },
                rest: { $0.isLowercaseASCIILetter || $0.isASCIIDigit || $0 == UInt8(ascii: "-") })
    }

    public static let regionIdPattern = "^[a-z][a-z0-9-]{0,62}$"
    public static let policyNamePattern = "^[a-z0-9][a-z0-9-]{0,62}$"

    /// Label keys: 1...253 characters; label values: at most 63 characters.
    public static let labelKeyMax = 253
    public static let labelValueMax = 63
    public static let maxLabels = 64

    /// Largest magnitude accepted for any number (beyond it integers lose precision).
    public static let maxSafeNumber = 9_007_199_254_740_991.0

    private static func matches(_ s: String, first: (UInt8) -> Bool, rest: (UInt8) -> Bool) -> Bool {
        let bytes = Array(s.utf8)
        guard let head = bytes.first, bytes.count <= 63, first(head) else { return false }
        return bytes.dropFirst().allSatisfy(rest)
    }
}

extension UInt8 {
    fileprivate var isLowercaseASCIILetter: Bool { self >= UInt8(ascii: "a") && self <= UInt8(ascii: "z") }
    fileprivate var isASCIIDigit: Bool { self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") }
}

/// Reads the members of one JSON object, reporting every problem to a shared collector.
/// Each accessor marks its key as known; `finish()` reports the rest as `unknown field`.
/// Accessors return nil when the key is absent or invalid (the error is already recorded);
/// `present(key)` tells the two apart when a caller needs to.
///
/// With `coerceStrings` (query parameters) string values are read as numbers and booleans.
public struct ObjectReader {
    public let path: String
    public let members: [String: JSONValue]
    public let errors: FieldErrorCollector
    public var coerceStrings = false
    private let known = KeySet()

    public init(path: String, members: [String: JSONValue], errors: FieldErrorCollector, coerceStrings: Bool = false) {
        self.path = path
        self.members = members
        self.errors = errors
        self.coerceStrings = coerceStrings
    }

    public func field(_ key: String) -> String { FieldPath.child(path, key) }

    /// Whether the key is in the object (null counts as present).
    public func present(_ key: String) -> Bool {
        known.insert(key)
        return members[key] != nil
    }

    /// The raw value, marking the key known. Absent: reports `is required` when `required`.
    /// Null: reports `must not be null` unless `nullable` (then returns nil silently).
    public func value(_ key: String, required: Bool = false, nullable: Bool = false) -> JSONValue? {
        known.insert(key)
        guard let value = members[key] else {
            if required { errors.add(field(key), "is required") }
            return nil
        }
        if value == .null {
            if !nullable { errors.add(field(key), required ? "is required and must not be null" : "must not be null") }
            return nil
        }
        return value
    }

    /// Marks a key known without reading it (read elsewhere, or deliberately ignored).
    public func allow(_ keys: String...) {
        for key in keys { known.insert(key) }
    }

    /// Reports `unknown field` for every member no accessor asked for.
    public func finish() {
        for key in members.keys.sorted() where !known.contains(key) {
            errors.add(field(key), "unknown field")
        }
    }

    // MARK: scalars

    public func string(
        _ key: String, required: Bool = false, nullable: Bool = false, allowEmpty: Bool = false,
        maxLength: Int? = 128, pattern: FieldPattern? = nil
    ) -> String? {
        guard let value = value(key, required: required, nullable: nullable) else { return nil }
        return Self.checkString(value, at: field(key), errors: errors, allowEmpty: allowEmpty, maxLength: maxLength, pattern: pattern)
    }

    public func bool(_ key: String, required: Bool = false, nullable: Bool = false) -> Bool? {
        guard let value = value(key, required: required, nullable: nullable) else { return nil }
        switch value {
        case .bool(let b): return b
        case .string(let s) where coerceStrings:
            switch s {
            case "true": return true
            case "false": return false
            default: break
            }
        default: break
        }
        errors.add(field(key), "must be a boolean")
        return nil
    }

    /// A finite number within `range`; `exclusiveMinimum` rejects values ≤ it (e.g. `> 0`).
    public func number(
        _ key: String, required: Bool = false, nullable: Bool = false,
        exclusiveMinimum: Double? = nil, minimum: Double? = nil, maximum: Double? = nil
    ) -> Double? {
        guard let value = value(key, required: required, nullable: nullable) else { return nil }
        return Self.checkNumber(value, at: field(key), errors: errors, coerceStrings: coerceStrings,
                                exclusiveMinimum: exclusiveMinimum, minimum: minimum, maximum: maximum)
    }

    /// A whole number within `range` (`4.0` is accepted, `4.5` is not).
    public func integer(_ key: String, required: Bool = false, nullable: Bool = false, in range: ClosedRange<Int>) -> Int? {
        guard let value = value(key, required: required, nullable: nullable) else { return nil }
        return Self.checkInteger(value, at: field(key), errors: errors, coerceStrings: coerceStrings, in: range)
    }

    /// One of an enum's raw values.
    public func enumeration<E: RawRepresentable & CaseIterable>(
        _ key: String, _ type: E.Type, required: Bool = false, nullable: Bool = false
    ) -> E? where E.RawValue == String {
        guard let value = value(key, required: required, nullable: nullable) else { return nil }
        return Self.checkEnum(value, type, at: field(key), errors: errors)
    }

    // MARK: composites

    /// A nested object's reader; call `finish()` on it when done.
    public func object(_ key: String, required: Bool = false, nullable: Bool = false) -> ObjectReader? {
        guard let value = value(key, required: required, nullable: nullable) else { return nil }
        guard case .object(let members) = value else {
            errors.add(field(key), "must be an object, not \(value.typeName)")
            return nil
        }
        return ObjectReader(path: field(key), members: members, errors: errors, coerceStrings: coerceStrings)
    }

    /// An array's elements with their paths. Checks emptiness and the item limit.
    public func array(
        _ key: String, required: Bool = false, nullable: Bool = false, allowEmpty: Bool = false, maxItems: Int? = nil
    ) -> [(path: String, value: JSONValue)]? {
        guard let value = value(key, required: required, nullable: nullable) else { return nil }
        guard case .array(let items) = value else {
            errors.add(field(key), "must be an array, not \(value.typeName)")
            return nil
        }
        if !allowEmpty && items.isEmpty {
            errors.add(field(key), "must not be empty")
            return nil
        }
        if let maxItems, items.count > maxItems {
            errors.add(field(key), "must have at most \(maxItems) items")
            return nil
        }
        return items.enumerated().map { (FieldPath.index(field(key), $0.offset), $0.element) }
    }

    /// An array of strings, each checked like `string(...)`; duplicates reported unless allowed.
    public func stringArray(
        _ key: String, required: Bool = false, nullable: Bool = false, allowEmpty: Bool = false,
        maxItems: Int? = 64, itemMaxLength: Int? = 128, allowDuplicates: Bool = false,
        pattern: FieldPattern? = nil
    ) -> [String]? {
        guard let items = array(key, required: required, nullable: nullable, allowEmpty: allowEmpty, maxItems: maxItems)
        else { return nil }
        var result: [String] = []
        var ok = true
        for (path, item) in items {
            guard let s = Self.checkString(item, at: path, errors: errors, allowEmpty: false,
                                           maxLength: itemMaxLength, pattern: pattern)
            else { ok = false; continue }
            if !allowDuplicates && result.contains(s) {
                errors.add(path, "duplicate value \"\(s)\"")
                ok = false
                continue
            }
            result.append(s)
        }
        return ok ? result : nil
    }

    /// A string→string map with Kubernetes-like label limits: keys 1...253 characters,
    /// values at most 63, at most `Rules.maxLabels` entries. Paths are `labels.<key>`.
    public func labels(_ key: String, required: Bool = false, nullable: Bool = false) -> [String: String]? {
        guard let value = value(key, required: required, nullable: nullable) else { return nil }
        return Self.checkLabels(value, at: field(key), errors: errors)
    }

    // MARK: value checks, usable on array items too

    public static func checkString(
        _ value: JSONValue, at path: String, errors: FieldErrorCollector, allowEmpty: Bool = false,
        maxLength: Int? = 128, pattern: FieldPattern? = nil
    ) -> String? {
        guard case .string(let s) = value else {
            errors.add(path, "must be a string, not \(value.typeName)")
            return nil
        }
        if !allowEmpty && s.isEmpty {
            errors.add(path, "must not be empty")
            return nil
        }
        // PostgreSQL text cannot hold NUL: refuse it here rather than fail in the database (a 500 once).
        if s.unicodeScalars.contains("\u{0}") {
            errors.add(path, "must not contain U+0000")
            return nil
        }
        // Code points, as JSON Schema's maxLength counts (not grapheme clusters: an
        // emoji with a skin tone is two).
        if let maxLength, s.unicodeScalars.count > maxLength {
            errors.add(path, "must be at most \(maxLength) characters")
            return nil
        }
        if let pattern, !pattern.test(s) {
            errors.add(path, "must match \(pattern.description)")
            return nil
        }
        return s
    }

    public static func checkNumber(
        _ value: JSONValue, at path: String, errors: FieldErrorCollector, coerceStrings: Bool = false,
        exclusiveMinimum: Double? = nil, minimum: Double? = nil, maximum: Double? = nil
    ) -> Double? {
        let number: Double
        switch value {
        case .number(let n):
            number = n
        case .string(let s) where coerceStrings:
            guard let n = Double(s.trimmingCharacters(in: .whitespaces)), !s.isEmpty else {
                errors.add(path, "must be a number")
                return nil
            }
            number = n
        default:
            errors.add(path, "must be a number, not \(value.typeName)")
            return nil
        }
        guard number.isFinite, abs(number) <= Rules.maxSafeNumber else {
            errors.add(path, "must be a finite number of reasonable size")
            return nil
        }
        if let exclusiveMinimum, number <= exclusiveMinimum {
            errors.add(path, "must be greater than \(JSONValue.format(exclusiveMinimum))")
            return nil
        }
        if let minimum, number < minimum {
            errors.add(path, "must be at least \(JSONValue.format(minimum))")
            return nil
        }
        if let maximum, number > maximum {
            errors.add(path, "must be at most \(JSONValue.format(maximum))")
            return nil
        }
        return number
    }

    public static func checkInteger(
        _ value: JSONValue, at path: String, errors: FieldErrorCollector, coerceStrings: Bool = false, in range: ClosedRange<Int>
    ) -> Int? {
        let number: Double
        switch value {
        case .number(let n):
            number = n
        case .string(let s) where coerceStrings:
            guard let n = Int(s) else {
                errors.add(path, "must be an integer")
                return nil
            }
            number = Double(n)
        default:
            errors.add(path, "must be an integer, not \(value.typeName)")
            return nil
        }
        guard number.isFinite, number == number.rounded(.towardZero) else {
            errors.add(path, "must be an integer")
            return nil
        }
        guard number >= Double(range.lowerBound) else {
            errors.add(path, "must be at least \(range.lowerBound)")
            return nil
        }
        guard number <= Double(range.upperBound) else {
            errors.add(path, "must be at most \(range.upperBound)")
            return nil
        }
        return Int(number)
    }

    public static func checkEnum<E: RawRepresentable & CaseIterable>(
        _ value: JSONValue, _ type: E.Type, at path: String, errors: FieldErrorCollector
    ) -> E? where E.RawValue == String {
        let allowed = E.allCases.map(\.rawValue).joined(separator: ", ")
        guard case .string(let s) = value, let result = E(rawValue: s) else {
            errors.add(path, "must be one of: \(allowed)")
            return nil
        }
        return result
    }

    public static func checkLabels(_ value: JSONValue, at path: String, errors: FieldErrorCollector) -> [String: String]? {
        guard case .object(let members) = value else {
            errors.add(path, "must be an object of strings, not \(value.typeName)")
            return nil
        }
        if members.count > Rules.maxLabels {
            errors.add(path, "must have at most \(Rules.maxLabels) entries")
            return nil
        }
        var result: [String: String] = [:]
        var ok = true
        for key in members.keys.sorted() {
            let itemPath = FieldPath.child(path, key)
            if key.isEmpty || key.count > Rules.labelKeyMax || key.unicodeScalars.contains("\u{0}") {
                errors.add(itemPath, "label key must be 1 to \(Rules.labelKeyMax) characters, without U+0000")
                ok = false
                continue
            }
            guard let s = checkString(members[key]!, at: itemPath, errors: errors, allowEmpty: true, maxLength: Rules.labelValueMax)
            else { ok = false; continue }
            result[key] = s
        }
        return ok ? result : nil
    }
}

/// The reader's set of known keys; a class so that copies of a reader share it.
private final class KeySet {
    var keys: Set<String> = []
    func insert(_ key: String) { keys.insert(key) }
    func contains(_ key: String) -> Bool { keys.contains(key) }
}

/// A named test a string must pass ("must match <description>").
public struct FieldPattern: Sendable {
    public var description: String
    public var test: @Sendable (String) -> Bool

    public init(_ description: String, _ test: @escaping @Sendable (String) -> Bool) {
        self.description = description
        self.test = test
    }

    /// Region and pool ids.
    public static let regionId = FieldPattern(Rules.regionIdPattern, Rules.isRegionId)
    /// Policy names.
    public static let policyName = FieldPattern(Rules.policyNamePattern, Rules.isPolicyName)
    /// Accelerator words: partition profiles (`3g.40gb`, `1g.10gb+me`) and links (`nvlink`).
    public static let token = FieldPattern("^[a-z0-9][a-z0-9.+-]*$") { s in
        guard let first = s.utf8.first, first.isLowercaseASCIILetter || first.isASCIIDigit else { return false }
        return s.utf8.allSatisfy { $0.isLowercaseASCIILetter || $0.isASCIIDigit || ".+-".utf8.contains($0) }
    }
}
