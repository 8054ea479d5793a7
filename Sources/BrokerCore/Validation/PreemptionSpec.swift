import JSON

/// How the instances of one QoS are taken back (`PUT /v1/admin/preemption/{qos}`): the
/// notice a victim gets before it stops (0: at once) and the minimum runtime before an
/// instance may be chosen at all (0: any instance). A QoS never set has both at 0.
public struct PreemptionSettings: Codable, Sendable, Equatable {
    public var qos: QoS
    public var noticeSeconds: Int
    public var minRuntimeSeconds: Int

    public init(qos: QoS, noticeSeconds: Int = 0, minRuntimeSeconds: Int = 0) {
        self.qos = qos
        self.noticeSeconds = noticeSeconds
        self.minRuntimeSeconds = minRuntimeSeconds
    }

    /// A day: a notice longer than any lease would outlive what it protects.
    public static let maxNoticeSeconds = 86_400
    /// A week.
    public static let maxMinRuntimeSeconds = 604_800

    /// The body `{"noticeSeconds", "minRuntimeSeconds"}`, both required, for `qos`.
    public static func parse(_ json: JSONValue, qos: QoS) throws(ValidationFailure) -> PreemptionSettings {
        let errors = FieldErrorCollector()
        var result: PreemptionSettings?
        if let r = errors.object(json) {
            let notice = r.integer("noticeSeconds", required: true, in: 0...maxNoticeSeconds)
            let minimum = r.integer("minRuntimeSeconds", required: true, in: 0...maxMinRuntimeSeconds)
            r.finish()
            if let notice, let minimum {
                result = PreemptionSettings(qos: qos, noticeSeconds: notice, minRuntimeSeconds: minimum)
            }
        }
        return try errors.result(result)
    }
}
