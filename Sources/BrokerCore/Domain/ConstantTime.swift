/// Secret comparisons whose time does not depend on the contents.
public enum ConstantTime {
    /// Compares every byte whatever the first difference, so response time does not
    /// reveal how much of a secret (the admin token, a CSRF token) a guess got right.
    public static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for index in 0..<max(x.count, y.count) {
            difference |= (index < x.count ? x[index] : 0) ^ (index < y.count ? y[index] : 0)
        }
        return difference == 0
    }
}
