import JSON

/// `POST /v1/webhooks` `{"url", "eventTypes"?}`: where to send which events. Whether
/// the URL's host may be called is decided where names can be resolved.
public struct WebhookSpec: Sendable, Equatable {
    public var url: String
    /// Empty: every type.
    public var eventTypes: [String]

    /// `HTTP://x` as `http://x`: a scheme is case-insensitive (RFC 3986 section 3.1), and
    /// stored lower-case it is what the URL policy and the database's check expect.
    static func lowercasingScheme(_ url: String) -> String {
        guard let end = url.range(of: "://") else { return url }
        let scheme = url[..<end.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { return url }
        return scheme + url[end.lowerBound...]
    }

    /// `admin`: the admin's endpoint, which may also ask for the inventory's types.
    public static func parse(_ json: JSONValue, admin: Bool = false) throws(ValidationFailure) -> WebhookSpec {
        let allowed = admin ? EventTypes.allocation + EventTypes.inventory : EventTypes.allocation
        let errors = FieldErrorCollector()
        var result: WebhookSpec?
        if let r = errors.object(json) {
            let url = r.string("url", required: true, maxLength: 2048)
            let types = r.stringArray("eventTypes", allowEmpty: true, maxItems: allowed.count)
            for (index, type) in (types ?? []).enumerated() where !allowed.contains(type) {
                errors.add(FieldPath.index(r.field("eventTypes"), index), "must be one of \(allowed.joined(separator: ", "))")
            }
            r.finish()
            if let url { result = WebhookSpec(url: Self.lowercasingScheme(url), eventTypes: types ?? []) }
        }
        return try errors.result(result)
    }
}
