import JSON

extension FieldPath {
    /// `parent.a[0].b` for the path `[a, 0, b]`.
    static func join(_ parent: String, _ path: [String]) -> String {
        path.reduce(parent) { parent, step in Int(step).map { index(parent, $0) } ?? child(parent, step) }
    }
}

/// Paths into documents: object keys, and array indices written as numbers (`"0"`) where
/// the value is an array.
extension JSONValue {
    /// The member or element a path step names.
    func child(_ step: String) -> JSONValue? {
        if case .array(let items) = self, let index = Int(step) { return items.indices.contains(index) ? items[index] : nil }
        return self[step]
    }

    /// The value at a path, nil when any step is missing.
    public func value(at path: [String]) -> JSONValue? {
        var current: JSONValue? = self
        for key in path { current = current?.child(key) }
        return current
    }

    /// A copy with `value` at `path`, creating objects along the way (replacing other
    /// values, except arrays that an index step enters).
    public func setting(_ path: [String], to value: JSONValue) -> JSONValue {
        guard let key = path.first else { return value }
        let rest = Array(path.dropFirst())
        if case .array(var items) = self, let index = Int(key), items.indices.contains(index) {
            items[index] = items[index].setting(rest, to: value)
            return .array(items)
        }
        var members = objectValue ?? [:]
        members[key] = (members[key] ?? .object([:])).setting(rest, to: value)
        return .object(members)
    }

    /// A copy without the member at `path` (unchanged when it is absent).
    public func removing(_ path: [String]) -> JSONValue {
        guard let key = path.first, let member = child(key) else { return self }
        // Not `nil`: JSONValue is ExpressibleByNilLiteral, and the literal would become `.null`.
        let replaced: JSONValue? = path.count == 1 ? Optional.none : member.removing(Array(path.dropFirst()))
        if case .array(var items) = self, let index = Int(key) {
            guard let replaced else { return self }
            items[index] = replaced
            return .array(items)
        }
        var members = objectValue!
        members[key] = replaced
        return .object(members)
    }
}

extension JSONValue {
    /// A copy without object members whose value is null, at any depth: Kubernetes reads a
    /// null field as an absent one (`resources:` or `annotations:` with nothing after them).
    /// Array items stay, nulls included: a null item is an error there too.
    public var withoutNulls: JSONValue {
        switch self {
        case .object(let members):
            var kept: [String: JSONValue] = [:]
            for (key, value) in members where value != .null { kept[key] = value.withoutNulls }
            return .object(kept)
        case .array(let items):
            return .array(items.map(\.withoutNulls))
        default:
            return self
        }
    }
}
