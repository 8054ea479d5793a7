import Foundation
import JSON

/// Dynamic Resource Allocation: the `ResourceClaimTemplate`s and `ResourceClaim`s of a
/// manifest file by name, so that a pod's `resourceClaims` can be read as device requests
/// (`deviceClassName` in `AcceleratorSpellings.deviceClasses`, `count` or `allocationMode`).
public struct DeviceClaims: Sendable, Equatable {
    struct Request: Sendable {
        var name: String
        var vendor: AcceleratorVendor
        var family: String? = nil
        var count: DeviceCount
        var amount: Double
        /// A partition profile (MIG), from a CEL selector `….profile == '1g.5gb'`.
        var profile: String? = nil
        /// A model a CEL selector requires of `productName` (`matches('^.*a100.*$')`).
        var model: String? = nil
    }

    /// The device requests of each template (`claimTemplates`) and claim (`claims`) by name.
    var claimTemplates: [String: JSONValue] = [:]
    var claims: [String: JSONValue] = [:]

    public init() {}

    /// The first quoted literal after `marker` in a request's CEL selectors: the MIG profile of
    /// `device.attributes[…].profile == '1g.5gb'`, the product of `productName….matches('^.*a100.*$')`
    /// (its punctuation read as word breaks). Other CEL picks devices within a node: no concern here.
    static func literal(after marker: String, in request: JSONValue) -> String? {
        for selector in request["selectors"]?.arrayValue ?? [] {
            guard let expression = selector["cel"]?["expression"]?.stringValue,
                let range = expression.range(of: marker)
            else { continue }
            var rest = expression[range.upperBound...]
            if marker.last != "'", let quote = rest.firstIndex(of: "'") { rest = rest[rest.index(after: quote)...] }
            guard let end = rest.firstIndex(of: "'") else { continue }
            let literal = String(rest[..<end])
            return marker.last == "'" ? literal : String(literal.map { $0.isLetter || $0.isNumber ? $0 : "-" })
        }
        return nil
    }

    /// Every claim and claim template among the documents.
    public init(_ documents: [JSONValue]) {
        for document in documents {
            guard document["apiVersion"]?.stringValue?.hasPrefix("resource.k8s.io/") == true,
                let name = document["metadata"]?["name"]?.stringValue
            else { continue }
            switch document["kind"]?.stringValue {
            case "ResourceClaimTemplate": claimTemplates[name] = document.value(at: ["spec", "spec", "devices", "requests"])
            case "ResourceClaim": claims[name] = document.value(at: ["spec", "devices", "requests"])
            default: break
            }
        }
    }

    /// The device requests of a pod's `resourceClaims`; a claim not in the file, or a device
    /// class the table does not know, is reported by name.
    func requests(_ podSpec: ObjectReader, errors: FieldErrorCollector) -> [Request] {
        guard case .array(let podClaims)? = podSpec.members["resourceClaims"] else { return [] }
        var result: [Request] = []
        for (index, claim) in podClaims.enumerated() {
            let path = FieldPath.index(podSpec.field("resourceClaims"), index)
            let templateName = claim["resourceClaimTemplateName"]?.stringValue
                ?? claim["source"]?["resourceClaimTemplateName"]?.stringValue
            let claimName = claim["resourceClaimName"]?.stringValue ?? claim["source"]?["resourceClaimName"]?.stringValue
            let found = templateName.flatMap { claimTemplates[$0] } ?? claimName.flatMap { claims[$0] }
            guard case .array(let deviceRequests)? = found else {
                let named = templateName.map { "ResourceClaimTemplate \($0)" } ?? claimName.map { "ResourceClaim \($0)" }
                errors.add(path, "refers to \(named ?? "a claim") that is not in this file: the broker cannot tell which devices it asks for")
                continue
            }
            for request in deviceRequests {
                // resource.k8s.io/v1 puts the request under `exactly`; v1beta1 beside the name.
                let exact = request["exactly"] ?? request["firstAvailable"]?.arrayValue?.first ?? request
                guard let className = exact["deviceClassName"]?.stringValue else { continue }
                guard let spelling = AcceleratorSpellings.deviceClasses.first(where: { $0.name == className }) else {
                    errors.add(path, "asks for devices of class \(className), which the broker does not know")
                    continue
                }
                // `allocationMode: All` takes every device of the node: one instance's worth.
                let amount = exact["allocationMode"]?.stringValue == "All" ? 1 : exact["count"]?.numberValue ?? 1
                result.append(Request(
                    name: className, vendor: spelling.vendor, family: spelling.family, count: spelling.count, amount: amount,
                    profile: Self.literal(after: "profile == '", in: exact),
                    model: Self.literal(after: "productName", in: exact).flatMap { AcceleratorModels.model(in: $0) }))
            }
        }
        return result
    }
}
