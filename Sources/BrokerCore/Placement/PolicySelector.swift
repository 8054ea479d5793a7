import Foundation

public enum PolicySelector {
    /// A request without `placement` uses the tenant policy whose selector (label → value) is
    /// contained in the request's labels; the most specific (most selector keys) wins, then the
    /// name (smallest in code-point order). An empty selector matches everything. Two policies
    /// with the same name and the same number of keys: the first in `policies` wins.
    public static func select(_ policies: [NamedPolicy], labels: [String: String]) -> NamedPolicy? {
        var best: NamedPolicy?
        for candidate in policies where candidate.matches(labels: labels) {
            guard let current = best else {
                best = candidate
                continue
            }
            if candidate.selector.count > current.selector.count
                || (candidate.selector.count == current.selector.count && isBefore(candidate.name, current.name))
            {
                best = candidate
            }
        }
        return best
    }

    /// Locale-independent name order (Unicode scalar values), so the choice never depends on
    /// the process's locale.
    static func isBefore(_ a: String, _ b: String) -> Bool {
        a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars)
    }
}
