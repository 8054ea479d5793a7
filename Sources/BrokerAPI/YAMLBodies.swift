import BrokerCore
import Foundation
import JSON
import Yams

/// YAML bodies: a stream of documents read into `JSONValue`s (JSON-compatible YAML), and
/// YAML text written from one (the CLI writes its `-o yaml` output with `text` too).
///
/// Aliases are resolved by copying what they name, so a small body can stand for a huge
/// value ("billion laughs"): the conversion counts nodes and the bytes of every scalar
/// each time it is copied, and stops at the first budget it exceeds or at its deadline.
public enum YAMLBodies {
    /// Most nodes a stream may expand to once aliases are resolved.
    static let maxNodes = 100_000
    /// Most bytes of scalars (keys and values) a stream may expand to once aliases are
    /// resolved: four times the body limit, so that any plain 1 MiB manifest fits.
    static let maxExpandedBytes = 4 << 20
    /// Most documents in one stream.
    static let maxDocuments = ManifestTranslator.maxDocuments

    static func isYAML(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        let mediaType = contentType.split(separator: ";").first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        } ?? ""
        return ["application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml"].contains(mediaType)
    }

    /// Every non-empty document of the stream, in order, and the bytes of their scalars
    /// once aliases are resolved. A document that does not parse is reported by its index
    /// (from 0, counting empty ones) and line.
    public static func parseStream(_ bytes: [UInt8], deadline: ContinuousClock.Instant? = nil) throws -> ([JSONValue], Int) {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw Problem.invalidRequest("the body is not valid UTF-8")
        }
        var budget = Budget(deadline: deadline)
        var documents: [JSONValue] = []
        var index = 0
        do {
            let parser = try Parser(yaml: text)
            while true {
                let root: Node?
                do {
                    root = try parser.nextRoot()
                } catch {
                    throw Problem.invalidRequest("YAML document \(index) is not valid YAML: \(describe(error))")
                }
                guard let root else { break }
                defer { index += 1 }
                guard index < maxDocuments else {
                    throw Problem.invalidRequest("the YAML stream holds more than \(maxDocuments) documents")
                }
                let value = try convert(root, depth: 0, budget: &budget, document: index)
                if value != .null { documents.append(value) }
            }
        } catch let problem as Problem {
            throw problem
        } catch {
            throw Problem.invalidRequest("the body is not valid YAML: \(describe(error))")
        }
        if documents.isEmpty { throw Problem.invalidRequest("the YAML body holds no document") }
        return (documents, budget.bytes)
    }

    /// Exactly one document, read like a stream.
    static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        let (documents, _) = try parseStream(bytes)
        guard documents.count == 1 else { throw Problem.invalidRequest("send one YAML document, not \(documents.count)") }
        return documents[0]
    }

    /// One line: where and what, without libyaml's snippet of the text.
    private static func describe(_ error: any Error) -> String {
        guard let yamlError = error as? YamlError else { return "\(error)" }
        switch yamlError {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            return "line \(mark.line), column \(mark.column): \(context?.description ?? "")\(problem)"
        default:
            return "\(yamlError)"
        }
    }

    struct Budget {
        var nodes = 0
        var bytes = 0
        let deadline: ContinuousClock.Instant?
    }

    private static func convert(_ node: Node, depth: Int, budget: inout Budget, document: Int) throws -> JSONValue {
        func refuse(_ what: String) -> Problem {
            let line = node.mark.map { ", line \($0.line)" } ?? ""
            return Problem.invalidRequest("YAML document \(document)\(line): \(what)")
        }
        budget.nodes += 1
        guard budget.nodes <= maxNodes else { throw refuse("the stream expands to more than \(maxNodes) nodes") }
        if budget.nodes & 0x3FF == 0, let deadline = budget.deadline, ContinuousClock.now > deadline {
            throw Problem.invalidRequest("the YAML stream took too long to read (aliases expand it too far)")
        }
        guard depth <= JSONValue.maxDepth else { throw refuse("nested deeper than \(JSONValue.maxDepth) levels") }
        switch node {
        case .scalar(let scalar):
            // Counted before the tag is resolved: resolving scans the text again.
            budget.bytes += scalar.string.utf8.count + 1
            guard budget.bytes <= maxExpandedBytes else {
                throw refuse("the stream expands to more than \(maxExpandedBytes) bytes once aliases are resolved")
            }
            switch Resolver.default.resolveTag(of: node) {
            case .null: return .null
            case .bool: if let b = node.bool { return .bool(b) }
            case .int:
                if let i = node.int { return .number(Double(i)) }
                if let d = node.float, d.isFinite { return .number(d) }
            case .float:
                guard let d = node.float, d.isFinite else { throw refuse("the number '\(scalar.string)' is not finite") }
                return .number(d)
            default: break
            }
            return .string(scalar.string)
        case .sequence(let sequence):
            return .array(try sequence.map { try convert($0, depth: depth + 1, budget: &budget, document: document) })
        case .mapping(let mapping):
            var members: [String: JSONValue] = [:]
            for (keyNode, valueNode) in mapping {
                guard case .scalar(let key) = keyNode else { throw refuse("mapping keys must be scalars") }
                budget.bytes += key.string.utf8.count + 1
                if members[key.string] != nil { throw refuse("the mapping repeats the key '\(key.string)'") }
                members[key.string] = try convert(valueNode, depth: depth + 1, budget: &budget, document: document)
            }
            return .object(members)
        case .alias:
            throw refuse("unresolved alias")
        }
    }

    /// YAML text of a JSON value: keys sorted, strings quoted wherever YAML would read them otherwise.
    public static func text(_ value: JSONValue) throws -> String {
        try serialize(node: node(value), sortKeys: true)
    }

    private static func node(_ value: JSONValue) -> Node {
        switch value {
        case .null: return Node("null")
        case .bool(let b): return Node(b ? "true" : "false")
        case .number(let n):
            if n == n.rounded(), abs(n) < 9_007_199_254_740_992 { return Node(String(Int64(n))) }
            return Node("\(n)")
        case .string(let s):
            let plain = Node(s)
            return Resolver.default.resolveTag(of: plain) == .str ? plain : Node(s, .implicit, .doubleQuoted)
        case .array(let items): return Node(items.map(node))
        case .object(let members): return Node(members.keys.sorted().map { (Node($0), node(members[$0]!)) })
        }
    }
}
