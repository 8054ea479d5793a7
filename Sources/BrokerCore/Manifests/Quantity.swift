import Foundation
import JSON

/// A Kubernetes resource quantity that could not be read.
public struct QuantityError: Error, Sendable, Equatable, CustomStringConvertible {
    public var input: String
    public var message: String

    public var description: String { "\(message): \"\(input)\"" }
}

/// Kubernetes resource quantities (`<number><suffix>`): binary suffixes Ki Mi Gi Ti Pi Ei,
/// decimal suffixes n u m k M G T P E, or a decimal exponent (`1e3`, `1E3`; `1E` alone is exa).
/// Negative quantities are rejected: CPU and memory requests are never negative.
public enum Quantity {
    /// The quantity in base units ("500m" → 0.5, "1Ki" → 1024).
    public static func parse(_ text: String) throws(QuantityError) -> Double {
        let s = text.trimmingCharacters(in: .whitespaces)
        let bytes = Array(s.utf8)
        var i = 0
        if i < bytes.count, bytes[i] == UInt8(ascii: "+") { i += 1 }
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") {
            throw QuantityError(input: text, message: "negative quantity")
        }
        let numberStart = i
        var digits = 0
        while i < bytes.count, isDigit(bytes[i]) { i += 1; digits += 1 }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            while i < bytes.count, isDigit(bytes[i]) { i += 1; digits += 1 }
        }
        guard digits > 0, let number = Double(String(decoding: bytes[numberStart..<i], as: UTF8.self)) else {
            throw QuantityError(input: text, message: "not a quantity")
        }
        let suffix = String(decoding: bytes[i...], as: UTF8.self)
        let multiplier: Double
        switch suffix {
        case "": multiplier = 1
        case "Ki": multiplier = 0x1p10
        case "Mi": multiplier = 0x1p20
        case "Gi": multiplier = 0x1p30
        case "Ti": multiplier = 0x1p40
        case "Pi": multiplier = 0x1p50
        case "Ei": multiplier = 0x1p60
        case "n": multiplier = 1e-9
        case "u": multiplier = 1e-6
        case "m": multiplier = 1e-3
        case "k": multiplier = 1e3
        case "M": multiplier = 1e6
        case "G": multiplier = 1e9
        case "T": multiplier = 1e12
        case "P": multiplier = 1e15
        case "E": multiplier = 1e18
        default:
            multiplier = try exponent(suffix, input: text)
        }
        let value = number * multiplier
        guard value.isFinite else { throw QuantityError(input: text, message: "quantity out of range") }
        return value
    }

    /// CPU cores: "500m" → 0.5, "2.5" → 2.5.
    public static func cpu(_ text: String) throws(QuantityError) -> Double {
        try parse(text)
    }

    /// Memory in GiB: "512Mi" → 0.5, "1G" → 0.931…, "128974848" (bytes) → 0.12….
    public static func memoryGiB(_ text: String) throws(QuantityError) -> Double {
        try parse(text) / 0x1p30
    }

    /// A YAML/JSON value that may be a number (`cpu: 2`) or a string (`"500m"`).
    public static func cpu(_ value: JSONValue) throws(QuantityError) -> Double {
        try base(value)
    }

    public static func memoryGiB(_ value: JSONValue) throws(QuantityError) -> Double {
        try base(value) / 0x1p30
    }

    private static func base(_ value: JSONValue) throws(QuantityError) -> Double {
        switch value {
        case .number(let n):
            guard n.isFinite else { throw QuantityError(input: "\(n)", message: "quantity out of range") }
            guard n >= 0 else { throw QuantityError(input: JSONValue.format(n), message: "negative quantity") }
            return n
        case .string(let s):
            return try parse(s)
        default:
            throw QuantityError(input: value.jsonText, message: "not a quantity")
        }
    }

    private static func exponent(_ suffix: String, input: String) throws(QuantityError) -> Double {
        let bytes = Array(suffix.utf8)
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "e") || bytes[0] == UInt8(ascii: "E") else {
            throw QuantityError(input: input, message: "unknown suffix")
        }
        var rest = bytes.dropFirst()
        var sign = 1
        if let first = rest.first, first == UInt8(ascii: "+") || first == UInt8(ascii: "-") {
            sign = first == UInt8(ascii: "-") ? -1 : 1
            rest = rest.dropFirst()
        }
        guard !rest.isEmpty, rest.count <= 4, rest.allSatisfy(isDigit),
              let e = Int(String(decoding: rest, as: UTF8.self))
        else { throw QuantityError(input: input, message: "unknown suffix") }
        return pow(10, Double(sign * e))
    }

    private static func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
}
