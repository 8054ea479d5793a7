import ArgumentParser
import BrokerAPI
import BrokerCore
import Foundation
import JSON

enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case table, json, yaml
}

/// What the process's standard streams are connected to.
enum Terminal {
    static let stdoutIsTTY = isatty(STDOUT_FILENO) == 1
    static let stderrIsTTY = isatty(STDERR_FILENO) == 1

    /// Colour only on a terminal, and never with NO_COLOR (no-color.org) or TERM=dumb.
    static func colour(onTTY tty: Bool) -> Bool {
        let environment = ProcessInfo.processInfo.environment
        let noColour = environment["NO_COLOR"].map { !$0.isEmpty } ?? false
        return tty && !noColour && environment["TERM"] != "dumb"
    }

    static func write(_ text: String, to handle: FileHandle) {
        handle.write(Data(text.utf8))
    }

    /// One line on stderr, `error:` in red on a terminal.
    static func error(_ message: String) {
        let prefix = Style.bad.apply("error:", colour: colour(onTTY: stderrIsTTY))
        write("\(prefix) \(message)\n", to: .standardError)
    }
}

enum Style: Sendable {
    case plain, bold, good, warn, bad, dim

    func apply(_ text: String, colour: Bool) -> String {
        guard colour else { return text }
        let code = switch self {
        case .plain: ""
        case .bold: "1"
        case .good: "32"
        case .warn: "33"
        case .bad: "31"
        case .dim: "2"
        }
        return code.isEmpty ? text : "\u{1B}[\(code)m\(text)\u{1B}[0m"
    }

    /// How a state word looks: green when all is well, yellow while waiting, red when stuck,
    /// dim when over. The API's words take their tone from `StateTone`; the rest are the CLI's own.
    static func of(state: String) -> Style {
        switch StateTone.of(state) {
        case .good: return .good
        case .waiting: return .warn
        case .stuck: return .bad
        case .over: return .dim
        case nil: break
        }
        switch state {
        case "ok", "ready": return .good
        case "full": return .warn
        default: return .plain
        }
    }
}

extension CaseIterable where Self: RawRepresentable<String> {
    /// The words of one of BrokerCore's lists for a help text: "a, b or c".
    static var helpList: String {
        let words = allCases.map(\.rawValue)
        return words.count < 2 ? words.joined() : words.dropLast().joined(separator: ", ") + " or " + words.last!
    }
}

/// Prints answers as the user asked: the broker's JSON (indented), YAML, or a table.
struct Printer: Sendable {
    var format: OutputFormat
    var colour: Bool

    func print(_ document: JSONValue, table: (JSONValue) -> String) throws {
        switch format {
        case .json: Terminal.write(Self.indentedJSON(document) + "\n", to: .standardOutput)
        case .yaml: Terminal.write(try YAMLBodies.text(document), to: .standardOutput)
        case .table: Terminal.write(table(document), to: .standardOutput)
        }
    }

    /// The codec's compact JSON with two-space indentation; `{}` and `[]` stay on one line.
    static func indentedJSON(_ value: JSONValue) -> String {
        let compact = value.encoded()
        var out: [UInt8] = []
        out.reserveCapacity(compact.count * 2)
        var depth = 0
        var inString = false
        var escaped = false
        func newline() {
            out.append(UInt8(ascii: "\n"))
            out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: 2 * depth))
        }
        var index = 0
        while index < compact.count {
            let byte = compact[index]
            defer { index += 1 }
            if inString {
                out.append(byte)
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
                out.append(byte)
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                out.append(byte)
                if index + 1 < compact.count, compact[index + 1] == byte + 2 {  // `}` and `]` follow `{` and `[` by 2
                    out.append(byte + 2)
                    index += 1
                } else {
                    depth += 1
                    newline()
                }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                newline()
                out.append(byte)
            case UInt8(ascii: ","):
                out.append(byte)
                newline()
            case UInt8(ascii: ":"):
                out.append(contentsOf: ": ".utf8)
            default:
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Aligned columns; a cell's style shows only with colour, so alignment never depends on it.
struct Table {
    struct Cell: ExpressibleByStringInterpolation {
        var text: String
        var style: Style = .plain
        init(_ text: String, _ style: Style = .plain) {
            self.text = text
            self.style = style
        }
        init(stringLiteral value: String) { text = value }
        static func state(_ value: String) -> Cell { Cell(value, Style.of(state: value)) }
    }

    var columns: [String]
    var rows: [[Cell]] = []

    init(_ columns: String...) { self.columns = columns }
    init(columns: [String]) { self.columns = columns }

    mutating func add(_ cells: Cell...) { rows.append(cells) }
    mutating func add(row cells: [Cell]) { rows.append(cells) }

    func render(colour: Bool) -> String {
        let header = columns.map { Cell($0, .bold) }
        var widths = columns.map(\.count)
        for row in rows {
            for (column, cell) in row.enumerated() where column < widths.count {
                widths[column] = max(widths[column], cell.text.count)
            }
        }
        return ([header] + rows).map { row in
            row.enumerated().map { column, cell in
                let padding = column == row.count - 1 ? "" : String(repeating: " ", count: widths[column] - cell.text.count)
                return cell.style.apply(cell.text, colour: colour) + padding
            }.joined(separator: "   ")
        }.map { $0 + "\n" }.joined()
    }
}

/// `Key: value` lines with the values aligned, for one resource.
struct Details {
    var lines: [(String, Table.Cell)] = []

    mutating func add(_ key: String, _ value: Table.Cell) { lines.append((key, value)) }

    func render(colour: Bool) -> String {
        let width = (lines.map(\.0.count).max() ?? 0) + 2
        return lines.map { key, value in
            (key + ":").padding(toLength: width, withPad: " ", startingAt: 0) + value.style.apply(value.text, colour: colour) + "\n"
        }.joined()
    }
}

/// Table text of JSON values.
extension JSONValue {
    /// A cell's text: strings as they are, numbers as JSON writes them, lists joined by
    /// commas, objects as `key=value`, absent as `-`.
    var cellText: String {
        switch self {
        case .null: "-"
        case .string(let value): value.isEmpty ? "-" : value
        case .number, .bool: jsonText
        case .array(let items): items.isEmpty ? "-" : items.map(\.cellText).joined(separator: ",")
        case .object(let members):
            members.isEmpty ? "-" : members.keys.sorted().map { "\($0)=\(members[$0]!.cellText)" }.joined(separator: ",")
        }
    }

    func text(_ key: String) -> String { self[key]?.cellText ?? "-" }
}

extension Optional where Wrapped == JSONValue {
    var cellText: String { self?.cellText ?? "-" }
}

/// "3m", "2h5m", "4d": how long ago (or, negative, how far ahead) an RFC 3339 time is.
func age(_ timestamp: String?, now: Date = Date()) -> String {
    guard let timestamp, let date = parseTimestamp(timestamp) else { return "-" }
    return duration(now.timeIntervalSince(date))
}

func duration(_ seconds: Double) -> String {
    let s = Int(abs(seconds).rounded(.down))
    let text = switch s {
    case ..<60: "\(s)s"
    case ..<3600: "\(s / 60)m\(s % 60 == 0 ? "" : "\(s % 60)s")"
    case ..<86400: "\(s / 3600)h\(s % 3600 / 60 == 0 ? "" : "\(s % 3600 / 60)m")"
    default: "\(s / 86400)d"
    }
    return seconds < 0 ? "in " + text : text
}

func parseTimestamp(_ text: String) -> Date? {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    if let date = formatter.date(from: text) { return date }
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.date(from: text)
}
