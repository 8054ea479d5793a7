import Foundation

/// A value that can be sent as a text-format bind parameter (`$n`).
/// `nil` is sent as SQL NULL.
public protocol PostgresEncodable: Sendable {
    var postgresText: String? { get }
}

/// A value that can be read from a column's text-format output.
public protocol PostgresDecodable {
    init(postgresText: String) throws
}

// MARK: - Scalars

extension String: PostgresEncodable, PostgresDecodable {
    public var postgresText: String? { self }
    public init(postgresText: String) { self = postgresText }
}

/// The integer types, in their decimal text form.
public protocol PostgresInteger: FixedWidthInteger, PostgresEncodable, PostgresDecodable {}

extension PostgresInteger {
    public var postgresText: String? { String(self) }

    public init(postgresText: String) throws {
        guard let value = Self(postgresText) else { throw PostgresError.decoding("not an \(Self.self)") }
        self = value
    }
}

extension Int: PostgresInteger {}
extension Int64: PostgresInteger {}
extension Int32: PostgresInteger {}

extension Double: PostgresEncodable, PostgresDecodable {
    /// Swift's shortest round-trip form; infinities and NaN in PostgreSQL's spelling.
    public var postgresText: String? {
        if isNaN { return "NaN" }
        if isInfinite { return self < 0 ? "-Infinity" : "Infinity" }
        return description
    }

    public init(postgresText: String) throws {
        switch postgresText {
        case "NaN": self = .nan
        case "Infinity": self = .infinity
        case "-Infinity": self = -.infinity
        default:
            guard let value = Double(postgresText) else { throw PostgresError.decoding("not a Double") }
            self = value
        }
    }
}

extension Bool: PostgresEncodable, PostgresDecodable {
    public var postgresText: String? { self ? "t" : "f" }
    public init(postgresText: String) throws {
        switch postgresText {
        case "t", "true": self = true
        case "f", "false": self = false
        default: throw PostgresError.decoding("not a Bool")
        }
    }
}

extension UUID: PostgresEncodable, PostgresDecodable {
    public var postgresText: String? { uuidString.lowercased() }
    public init(postgresText: String) throws {
        guard let value = UUID(uuidString: postgresText) else { throw PostgresError.decoding("not a UUID") }
        self = value
    }
}

extension Date: PostgresEncodable, PostgresDecodable {
    /// ISO 8601 in UTC with microseconds, e.g. `2026-11-23T07:24:03.123456Z`.
    public var postgresText: String? { PostgresTimestamp.format(self) }

    /// `timestamptz`/`timestamp` text output (`DateStyle` ISO, any offset), also `infinity`.
    public init(postgresText: String) throws {
        self = try PostgresTimestamp.parse(postgresText)
    }
}

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public var postgresText: String? {
        switch self {
        case .none: return nil
        case .some(let wrapped): return wrapped.postgresText
        }
    }
}

extension Array: PostgresEncodable where Element == String {
    /// A `text[]` literal with every element quoted and escaped.
    public var postgresText: String? { PostgresArrayLiteral.format(self) }
}

extension Array: PostgresDecodable where Element == String {
    /// A one-dimensional array's text output. Throws on a NULL element: use
    /// `PostgresArrayLiteral.parse` to keep NULLs.
    public init(postgresText: String) throws {
        self = try PostgresArrayLiteral.parse(postgresText).map { element in
            guard let element else { throw PostgresError.decoding("NULL element in a [String]") }
            return element
        }
    }
}

// MARK: - JSON

/// A JSON document bound as text; the server converts it to the parameter's type (`json`/`jsonb`).
/// Written by the caller's JSON codec (this module has none).
public struct PostgresJSON: PostgresEncodable {
    public let rawJSON: String

    /// Already-serialised JSON, sent as is.
    public init(rawJSON: String) {
        self.rawJSON = rawJSON
    }

    public var postgresText: String? { rawJSON }

    /// The decoder used by `PostgresRow.decodeJSON`: dates as `PostgresTimestamp` writes them.
    public static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            return try PostgresTimestamp.parse(container.decode(String.self))
        }
        return decoder
    }
}

// MARK: - text[] literals

/// The text form of one-dimensional PostgreSQL arrays.
public enum PostgresArrayLiteral {
    /// `{"a","b \"c\""}`: every element quoted; `nil` becomes `NULL`.
    public static func format(_ elements: [String?]) -> String {
        var out = "{"
        for (index, element) in elements.enumerated() {
            if index > 0 { out += "," }
            guard let element else {
                out += "NULL"
                continue
            }
            out += "\""
            for character in element.unicodeScalars {
                if character == "\"" || character == "\\" { out += "\\" }
                out.unicodeScalars.append(character)
            }
            out += "\""
        }
        out += "}"
        return out
    }

    public static func format(_ elements: [String]) -> String {
        format(elements.map { Optional($0) })
    }

    /// Parses array output (`{a,"b c",NULL,""}`, optionally with a `[l:u]=` prefix).
    /// Multi-dimensional arrays are rejected.
    public static func parse(_ text: String) throws -> [String?] {
        let bytes = Array(text.utf8)
        var i = 0
        func fail(_ why: String) -> PostgresError { .decoding("bad array literal: \(why)") }
        if i < bytes.count, bytes[i] == UInt8(ascii: "[") {
            guard let equals = bytes.firstIndex(of: UInt8(ascii: "=")) else { throw fail("dimensions") }
            i = equals + 1
        }
        guard i < bytes.count, bytes[i] == UInt8(ascii: "{") else { throw fail("no opening brace") }
        i += 1
        var result: [String?] = []
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
            guard i + 1 == bytes.count else { throw fail("trailing characters") }
            return result
        }
        while true {
            guard i < bytes.count else { throw fail("unterminated") }
            var element: [UInt8] = []
            if bytes[i] == UInt8(ascii: "{") {
                throw fail("multi-dimensional arrays are not supported")
            } else if bytes[i] == UInt8(ascii: "\"") {
                i += 1
                while true {
                    guard i < bytes.count else { throw fail("unterminated quote") }
                    let byte = bytes[i]
                    if byte == UInt8(ascii: "\\") {
                        guard i + 1 < bytes.count else { throw fail("dangling escape") }
                        element.append(bytes[i + 1])
                        i += 2
                    } else if byte == UInt8(ascii: "\"") {
                        i += 1
                        break
                    } else {
                        element.append(byte)
                        i += 1
                    }
                }
                result.append(String(decoding: element, as: UTF8.self))
            } else {
                var escaped = false
                while i < bytes.count, bytes[i] != UInt8(ascii: ","), bytes[i] != UInt8(ascii: "}") {
                    if bytes[i] == UInt8(ascii: "\\"), i + 1 < bytes.count {
                        escaped = true
                        element.append(bytes[i + 1])
                        i += 2
                    } else {
                        element.append(bytes[i])
                        i += 1
                    }
                }
                let value = String(decoding: element, as: UTF8.self).trimmingCharacters(in: .whitespaces)
                if !escaped, value.uppercased() == "NULL" {
                    result.append(nil)
                } else {
                    result.append(value)
                }
            }
            guard i < bytes.count else { throw fail("unterminated") }
            if bytes[i] == UInt8(ascii: ",") {
                i += 1
            } else if bytes[i] == UInt8(ascii: "}") {
                guard i + 1 == bytes.count else { throw fail("trailing characters") }
                return result
            } else {
                throw fail("unexpected character")
            }
        }
    }
}

// MARK: - timestamps

/// Formatting and parsing of timestamps without Foundation formatters (which are slow and
/// stop at milliseconds).
public enum PostgresTimestamp {
    /// ISO 8601 in UTC with microseconds, e.g. `2026-11-23T07:24:03.123456Z`.
    public static func format(_ date: Date) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = Int64(interval.rounded(.down))
        var micros = Int64(((interval - Double(seconds)) * 1_000_000).rounded())
        if micros >= 1_000_000 {
            seconds += 1
            micros -= 1_000_000
        }
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let (year, month, day) = civil(fromDays: days)
        func pad(_ value: Int64, _ width: Int) -> String {
            let digits = String(value)
            return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T"
            + "\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2))"
            + ".\(pad(micros, 6))Z"
    }

    /// `YYYY-MM-DD[ T]hh:mm:ss[.ffffff][Z|±hh[:mm[:ss]]]`; no offset means UTC.
    static func parse(_ text: String) throws -> Date {
        switch text {
        case "infinity": return .distantFuture
        case "-infinity": return .distantPast
        default: break
        }
        let bytes = Array(text.utf8)
        var i = 0
        func fail() -> PostgresError { .decoding("not a timestamp") }
        func number(minDigits: Int, maxDigits: Int) throws -> Int64 {
            var value: Int64 = 0
            var count = 0
            while i < bytes.count, count < maxDigits, bytes[i] >= 48, bytes[i] <= 57 {
                value = value * 10 + Int64(bytes[i] - 48)
                i += 1
                count += 1
            }
            guard count >= minDigits else { throw fail() }
            return value
        }
        func expect(_ character: Character) throws {
            guard i < bytes.count, bytes[i] == character.asciiValue! else { throw fail() }
            i += 1
        }
        /// `a-bb-cc` or `a:bb:cc`, with `a` of `firstDigits` digits.
        func triple(_ firstDigits: ClosedRange<Int>, _ separator: Character) throws -> (Int64, Int64, Int64) {
            let first = try number(minDigits: firstDigits.lowerBound, maxDigits: firstDigits.upperBound)
            try expect(separator)
            let second = try number(minDigits: 2, maxDigits: 2)
            try expect(separator)
            return (first, second, try number(minDigits: 2, maxDigits: 2))
        }
        let (year, month, day) = try triple(4...9, "-")
        guard i < bytes.count, bytes[i] == UInt8(ascii: " ") || bytes[i] == UInt8(ascii: "T") else { throw fail() }
        i += 1
        let (hour, minute, second) = try triple(2...2, ":")
        var micros: Int64 = 0
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            let start = i
            let fraction = try number(minDigits: 1, maxDigits: 9)
            var digits = i - start
            micros = fraction
            while digits < 6 { micros *= 10; digits += 1 }
            while digits > 6 { micros /= 10; digits -= 1 }
        }
        var offset: Int64 = 0
        if i < bytes.count, bytes[i] == UInt8(ascii: "Z") {
            i += 1
        } else if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") {
            let sign: Int64 = bytes[i] == UInt8(ascii: "-") ? -1 : 1
            i += 1
            var seconds = try number(minDigits: 2, maxDigits: 2) * 3600
            if i < bytes.count, bytes[i] == UInt8(ascii: ":") {
                i += 1
                seconds += try number(minDigits: 2, maxDigits: 2) * 60
                if i < bytes.count, bytes[i] == UInt8(ascii: ":") {
                    i += 1
                    seconds += try number(minDigits: 2, maxDigits: 2)
                }
            }
            offset = sign * seconds
        }
        guard i == bytes.count, (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { throw fail() }
        let days = Self.days(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        return Date(timeIntervalSince1970: Double(seconds) + Double(micros) / 1_000_000)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
