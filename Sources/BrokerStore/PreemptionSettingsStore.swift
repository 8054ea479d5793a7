import BrokerCore
import Foundation
import PostgresClient

// The admin's preemption settings per QoS (migration 17), read by `gpb_preempt` and
// `preemptionCandidates` in the grant's own transaction.
extension AllocationStore {
    /// Every QoS, with 0s where nothing was set.
    public func preemptionSettings() async throws -> [PreemptionSettings] {
        try await StoreError.translating {
            let set = try await pool.withConnection { c in
                try c.query("SELECT qos, notice_seconds, min_runtime_seconds FROM preemption_settings").map { row in
                    PreemptionSettings(
                        qos: try enumValue(row, "qos"), noticeSeconds: try row.decode("notice_seconds"),
                        minRuntimeSeconds: try row.decode("min_runtime_seconds"))
                }
            }
            return QoS.allCases.map { qos in set.first { $0.qos == qos } ?? PreemptionSettings(qos: qos) }
        }
    }

    /// Sets one QoS's settings; they apply to preemptions from the next grant on.
    public func setPreemptionSettings(_ settings: PreemptionSettings) async throws -> PreemptionSettings {
        try await StoreError.translating {
            try await pool.withConnection { c in
                try c.query(
                    """
                    INSERT INTO preemption_settings (qos, notice_seconds, min_runtime_seconds) VALUES ($1, $2, $3)
                    ON CONFLICT (qos) DO UPDATE SET notice_seconds = excluded.notice_seconds,
                        min_runtime_seconds = excluded.min_runtime_seconds, updated_at = now()
                    """,
                    [settings.qos.rawValue, settings.noticeSeconds, settings.minRuntimeSeconds])
            }
            return settings
        }
    }
}
