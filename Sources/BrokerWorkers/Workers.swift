import BrokerStore
import Foundation
import Logging
import Metrics

/// The broker's background loops: lease expiry, idle deprovisioning, pending admission,
/// the end of preemption notices and of stock-out cool-downs and, with a retention
/// setting, history removal. Every broker process runs them; the
/// store's row claims keep them from doing the same work twice.
public struct BrokerWorkers: Sendable {
    public struct Configuration: Sendable {
        public var interval: Duration
        /// Between readings of the usage gauges, which add up the month's ledger.
        public var usageInterval: Duration
        /// Between history retention passes (each verifies from the checkpoint first).
        public var retentionInterval: Duration
        public init(interval: Duration = .seconds(5), usageInterval: Duration = .seconds(60), retentionInterval: Duration = .seconds(600)) {
            self.interval = interval
            self.usageInterval = usageInterval
            self.retentionInterval = retentionInterval
        }
    }

    let store: MaintenanceStore
    let meter: UsageMeter?
    let retention: HistoryRetention?
    let configuration: Configuration
    let logger: Logger
    /// Runs the pending admitter before its interval is up (capacity appeared).
    let admission: WakeSignal

    public init(
        store: MaintenanceStore, meter: UsageMeter? = nil, retention: HistoryRetention? = nil, configuration: Configuration,
        logger: Logger, admission: WakeSignal = WakeSignal()
    ) {
        self.store = store
        self.meter = meter
        self.retention = retention
        self.configuration = configuration
        self.logger = logger
        self.admission = admission
    }

    /// Runs every worker until the task is cancelled.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.loop("lease_reconciler") { try await store.expireLeases() } }
            group.addTask { await self.loop("idle_releaser") { try await store.deprovisionIdle() } }
            group.addTask { await self.loop("preemption_notice") { try await store.endDuePreemptions() } }
            group.addTask {
                await self.loop("stockout_cooldown") {
                    let ended = try await store.endStockOuts()
                    if ended > 0 { admission.signal() }  // capacity came back
                    return ended
                }
            }
            group.addTask { await self.loop("idempotency_janitor") { try await store.purgeIdempotencyKeys() } }
            group.addTask {
                await self.loop("pending_admitter", wake: admission) {
                    let (admitted, timedOut) = try await store.admitPending()
                    if timedOut > 0 { Counter(label: "worker_pending_unschedulable_total").increment(by: timedOut) }
                    return admitted
                }
            }
            if let meter {
                group.addTask { await self.loop("usage_meter", every: configuration.usageInterval) { _ = try await meter.step(); return 0 } }
            }
            if let retention {
                group.addTask { await self.loop("history_retention", every: configuration.retentionInterval) { try await retention.step() } }
            }
        }
    }

    /// One worker: a step every interval, its count and duration as metrics. A
    /// failing step (database down) is logged and retried next interval.
    private func loop(
        _ name: String, every interval: Duration? = nil, wake: WakeSignal? = nil, step: @Sendable () async throws -> Int
    ) async {
        let processed = Counter(label: "worker_processed_total", dimensions: [("worker", name)])
        let failures = Counter(label: "worker_failures_total", dimensions: [("worker", name)])
        let duration = Timer(label: "worker_run_duration_seconds", dimensions: [("worker", name)])
        while !Task.isCancelled {
            let started = ContinuousClock.now
            do {
                let count = try await step()
                if count > 0 {
                    processed.increment(by: count)
                    logger.info("worker step", metadata: ["worker": "\(name)", "processed": "\(count)"])
                }
            } catch {
                failures.increment()
                logger.warning("worker step failed", metadata: ["worker": "\(name)", "error": "\(error)"])
            }
            duration.recordNanoseconds(Int64((ContinuousClock.now - started) / .nanoseconds(1)))
            if let wake {
                // A burst of releases signals many times: at most 20 runs a second.
                try? await Task.sleep(for: .milliseconds(50))
                await wake.wait(upTo: interval ?? configuration.interval)
            } else {
                try? await Task.sleep(for: interval ?? configuration.interval)
            }
        }
    }
}
