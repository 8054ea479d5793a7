import BrokerCore
import MicroHTTP

/// A query parameter given more than once. A list parameter may be spelled
/// either way, `gpuSeries=T4,A10` or `gpuSeries=T4&gpuSeries=A10` (what generated
/// clients send for an array); any other repeated parameter is refused with 422
/// instead of silently keeping one value.
enum RepeatedQuery {
    static let lists: Set<String> = ["gpuSeries"]

    static func normalize(_ request: inout HTTPRequest) throws {
        guard !request.repeatedQuery.isEmpty else { return }
        var errors: [FieldError] = []
        for (name, values) in request.repeatedQuery.sorted(by: { $0.key < $1.key }) {
            if lists.contains(name) {
                request.query[name] = values.joined(separator: ",")
            } else {
                errors.append(FieldError(field: name, message: "given \(values.count) times; give it once"))
            }
        }
        if !errors.isEmpty { throw Problem.validation(errors) }
        request.repeatedQuery = [:]
    }
}
