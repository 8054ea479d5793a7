import BrokerCore
import BrokerStore
import Foundation
import MicroHTTP
import Yams

/// `201` answer of `POST /v1/allocations/from-manifest`.
struct ManifestAnswer: Encodable {
    var allocation: AllocationView
    var manifests: [JSONValue]
}

/// Kubernetes Pods and Deployments (JSON or YAML) in; an allocation and one label-injected
/// manifest per region out. The translation is `ManifestTranslator`'s; this file reads and
/// writes the bodies and tries the instance types of `eci-use-specs` in order.
enum ManifestRoutes {
    static func register(_ routes: inout RouteBuilder) {
        routes.add("POST", "/v1/allocations/from-manifest", .tenant) { request, context in
            let tenant = try context.tenant
            let key = try AllocationRoutes.idempotencyKey(request)
            let asYAML = try wantsYAML(request.headers["Accept"])
            let translation = try ManifestTranslator.translate(try readManifest(request))
            let view = try await create(translation, tenantId: tenant.id.uuid, context: context, key: key)
            let shares = ManifestTranslator.shares(regions: view.instances.map(\.region))
            let chosenType = translation.requests.count > 1 ? view.request.shape.instanceType : nil
            let answer = ManifestAnswer(
                allocation: view,
                manifests: ManifestTranslator.regionManifests(translation, shares: shares, instanceType: chosenType))
            let location = ("Location", "/v1/allocations/\(view.id.description)")
            guard asYAML else { return try JSONBodies.response(201, answer, headers: [location]) }
            let json = try JSONValue.parse(JSONBodies.encode(answer))
            return HTTPResponse(
                status: 201, headers: HTTPHeaders([("Content-Type", "application/yaml"), location]),
                body: Array(try YAMLBodies.text(json).utf8))
        }
    }

    /// Tries each instance type in order; the first that can be satisfied is granted.
    /// With an `Idempotency-Key` a replay matches the type that was granted: the other types'
    /// bodies differ from the recorded one, so they answer "reused" and are skipped.
    static func create(
        _ translation: ManifestTranslation, tenantId: UUID, context: RequestContext, key: String?
    ) async throws -> AllocationView {
        let several = translation.requests.count > 1
        var decisions: [PlacementDecision] = []
        var details: [String] = []
        var reused = false
        for allocationRequest in translation.requests {
            do {
                return try await context.services.allocations.create(
                    tenantId: tenantId, request: allocationRequest, actor: context.actor, idempotencyKey: key)
            } catch StoreError.insufficientCapacity(let detail, let found) where several {
                let type = allocationRequest.shape.instanceType ?? ""
                details.append("\(type): \(detail)")
                decisions += found.map { PlacementDecision(region: $0.region, replicas: $0.replicas, reason: "\(type): \($0.reason)") }
            } catch StoreError.idempotencyKeyReused where several {
                reused = true
            }
        }
        if reused { throw StoreError.idempotencyKeyReused }
        throw StoreError.insufficientCapacity(
            "no instance type of \(ManifestTranslator.Labels.useSpecs) can be satisfied: \(details.joined(separator: "; "))",
            decisions: decisions)
    }

    /// The body as a JSON value: JSON, or YAML (`application/yaml`, `text/yaml`, `application/x-yaml`).
    static func readManifest(_ request: HTTPRequest) throws -> JSONValue {
        let contentType = request.headers["Content-Type"]
        if JSONBodies.isJSON(contentType) { return try JSONBodies.parse(request.body) }
        guard YAMLBodies.isYAML(contentType) else {
            throw Problem.unsupportedMediaType(
                "send the manifest as 'Content-Type: application/json', 'application/yaml' or 'text/yaml'")
        }
        return try YAMLBodies.parse(request.body)
    }

    /// Whether `Accept` prefers YAML over JSON (the first of them listed with q > 0 wins).
    static func wantsYAML(_ accept: String?) throws -> Bool {
        guard let accept else { return false }
        for item in accept.split(separator: ",") {
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            if parts.dropFirst().contains(where: { $0.replacingOccurrences(of: " ", with: "") == "q=0" }) { continue }
            if YAMLBodies.isYAML(parts[0]) { return true }
            if JSONBodies.isJSON(parts[0]) || parts[0] == "*/*" || parts[0] == "application/*" { return false }
        }
        return false
    }
}

/// YAML bodies: read into a `JSONValue` (one document, JSON-compatible YAML), written from one.
/// The CLI writes its `-o yaml` output with `text` too.
public enum YAMLBodies {
    /// Most nodes a document may expand to once aliases are resolved ("billion laughs").
    static let maxNodes = 100_000

    static func isYAML(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        let mediaType = contentType.split(separator: ";").first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        } ?? ""
        return ["application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml"].contains(mediaType)
    }

    static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw Problem.invalidRequest("the body is not valid UTF-8")
        }
        let root: Node
        do {
            let parser = try Parser(yaml: text)
            guard let first = try parser.nextRoot() else { throw Problem.invalidRequest("the YAML body is empty") }
            if try parser.nextRoot() != nil {
                throw Problem.invalidRequest("send one YAML document, not several")
            }
            root = first
        } catch let problem as Problem {
            throw problem
        } catch {
            throw Problem.invalidRequest("the body is not valid YAML: \(error)")
        }
        var budget = maxNodes
        return try value(root, depth: 0, budget: &budget)
    }

    private static func value(_ node: Node, depth: Int, budget: inout Int) throws -> JSONValue {
        budget -= 1
        guard budget >= 0 else { throw Problem.invalidRequest("the YAML document expands to more than \(maxNodes) nodes") }
        guard depth <= JSONValue.maxDepth else {
            throw Problem.invalidRequest("the YAML document is nested deeper than \(JSONValue.maxDepth) levels")
        }
        switch node {
        case .scalar(let scalar):
            switch Resolver.default.resolveTag(of: node) {
            case .null: return .null
            case .bool: if let b = node.bool { return .bool(b) }
            case .int:
                if let i = node.int { return .number(Double(i)) }
                if let d = node.float, d.isFinite { return .number(d) }
            case .float:
                guard let d = node.float, d.isFinite else {
                    throw Problem.invalidRequest("the YAML number '\(scalar.string)' is not finite")
                }
                return .number(d)
            default: break
            }
            return .string(scalar.string)
        case .sequence(let sequence):
            return .array(try sequence.map { try value($0, depth: depth + 1, budget: &budget) })
        case .mapping(let mapping):
            var members: [String: JSONValue] = [:]
            for (keyNode, valueNode) in mapping {
                guard case .scalar(let key) = keyNode else {
                    throw Problem.invalidRequest("YAML mapping keys must be scalars")
                }
                if members[key.string] != nil {
                    throw Problem.invalidRequest("the YAML mapping repeats the key '\(key.string)'")
                }
                members[key.string] = try value(valueNode, depth: depth + 1, budget: &budget)
            }
            return .object(members)
        case .alias:
            throw Problem.invalidRequest("unresolved YAML alias")
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
