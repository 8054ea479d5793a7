import Foundation

/// Markup whose interpolated strings are escaped: `"<td>\(label)</td>" as HTML` escapes
/// `label`, while an interpolated `HTML` value goes in as it is. Every page is built from
/// these, so a value from the API (a tenant's labels are hostile input) cannot become
/// markup unless code says `HTML(trusted:)`.
struct HTML: Sendable, ExpressibleByStringInterpolation, ExpressibleByStringLiteral {
    private(set) var text: String

    /// Markup the console itself wrote (never a value that came from a request or the API).
    init(trusted text: String) { self.text = text }

    init(stringLiteral value: String) { text = value }

    init(stringInterpolation: StringInterpolation) { text = stringInterpolation.text }

    static let empty = HTML(trusted: "")

    struct StringInterpolation: StringInterpolationProtocol {
        var text = ""

        init(literalCapacity: Int, interpolationCount: Int) {
            text.reserveCapacity(literalCapacity + 16 * interpolationCount)
        }

        mutating func appendLiteral(_ literal: String) { text += literal }
        mutating func appendInterpolation(_ value: String) { text += HTML.escape(value) }
        mutating func appendInterpolation(_ value: HTML) { text += value.text }
        mutating func appendInterpolation(_ value: Int) { text += String(value) }
        mutating func appendInterpolation(_ values: [HTML]) { for value in values { text += value.text } }
    }

    /// Safe in text and in double- or single-quoted attribute values.
    static func escape(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for character in value.unicodeScalars {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    /// A query string value or path segment (for links built from API values).
    static func urlComponent(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }
}

/// Numbers as a person reads them: no trailing ".0", at most two decimals.
func formatNumber(_ value: Double) -> String {
    if value == value.rounded(), abs(value) < 1e15 { return String(Int(value)) }
    return String(format: "%.2f", value)
}

/// An ISO 8601 timestamp from the API shown shorter: "2025-06-03 08:15:30 UTC".
func formatTime(_ iso: String?) -> String {
    guard let iso, iso.count >= 19 else { return iso ?? "—" }
    let start = iso.startIndex
    return iso[start..<iso.index(start, offsetBy: 10)] + " " + iso[iso.index(start, offsetBy: 11)..<iso.index(start, offsetBy: 19)]
        + " UTC"
}
