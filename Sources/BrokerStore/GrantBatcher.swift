import BrokerCore
import Foundation
import JSON
import Metrics
import PostgresClient
import Synchronization

/// A planned grant (`AllocationRecord`), encoded by the request's own task rather than by
/// the batch's leader: one `gpb_planned_grant` as JSON, typed once where the statement
/// reads it (`one`, `many`).
struct GrantReservation: Sendable, JSONWritable {
    var allocationId: ResourceID
    var record: [UInt8]

    /// SQL for the `gpb_planned_grant` of `$1`, a reservation's JSON, and for the
    /// `gpb_planned_grant[]` of `$1`, a batch's.
    static let one = "jsonb_populate_record(NULL::gpb_planned_grant, $1::jsonb)"
    static let many = "ARRAY(SELECT jsonb_populate_recordset(NULL::gpb_planned_grant, $1::jsonb))"

    /// Inside a transaction, on its own (`gpb_grant`).
    func reserve(_ c: PostgresConnection) throws -> [InstanceView] {
        try AllocationStore.reservation(c, "SELECT * FROM gpb_grant(\(Self.one))", [json])
    }

    var json: PostgresJSON { PostgresJSON(rawJSON: String(decoding: record, as: UTF8.self)) }

    func write(to json: inout JSONWriter) {
        json.raw(record)
    }

    /// A batch's JSON: an array of reservations.
    static func batch(_ reservations: [GrantReservation]) -> PostgresJSON {
        var json = JSONWriter(capacity: reservations.count * 2048)
        json.value(reservations)
        return PostgresJSON(rawJSON: json.text)
    }
}

/// Group commit for grants outside a transaction. A grant joins the queue; a sender
/// takes everything queued (up to `maxBatch`) and sends it as one statement
/// (`gpb_grant_batch`, definitions/grants.sql, which leaves out grants over a price cap,
/// a budget or a quota, or that no longer fit):
/// one round trip and one commit for all of them, and on a hot pool one row
/// lock per batch instead of one per grant. A sender keeps its connection and its
/// thread while grants keep coming and sends the next batch as soon as the last one
/// commits, with no task switch in between; it ends when the queue is empty. At most
/// `maxConcurrentBatches` senders run; a grant that finds none starts one, so a lone
/// request waits for nobody. Every grant is answered after its batch commits.
final class GrantBatcher: Sendable {
    let pool: PostgresPool
    let maxBatch: Int
    let maxConcurrentBatches: Int

    private typealias Outcome = Result<[InstanceView], any Error>

    private struct Waiter {
        var reservation: GrantReservation
        var continuation: CheckedContinuation<Outcome, Never>
    }

    /// Batches sent and the grants in them, since start: their ratio is the mean batch size.
    struct Statistics: Sendable {
        var batches = 0
        var grants = 0
    }

    private struct State {
        var senders = 0
        var waiting: [Waiter] = []
        var statistics = Statistics()
    }

    var statistics: Statistics { state.withLock { $0.statistics } }

    private let state = Mutex(State())
    // For /metrics: their ratio is the mean batch size.
    private let batchesCounter = Counter(label: "grant_batches_total")
    private let grantsCounter = Counter(label: "grant_batched_grants_total")

    init(pool: PostgresPool, maxBatch: Int = 32, maxConcurrentBatches: Int = 1) {
        precondition(maxBatch >= 1 && maxConcurrentBatches >= 1)
        self.pool = pool
        self.maxBatch = maxBatch
        self.maxConcurrentBatches = maxConcurrentBatches
    }

    /// The granted instances; `AllocationStore.LostRace` when a pool fell short or the
    /// tenant changed meanwhile (nothing was written: read afresh and plan again).
    func grant(_ reservation: GrantReservation) async throws -> [InstanceView] {
        try await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
            let startSender = state.withLock { state -> Bool in
                state.waiting.append(Waiter(reservation: reservation, continuation: continuation))
                guard state.senders < maxConcurrentBatches else { return false }
                state.senders += 1
                return true
            }
            if startSender { self.startSender() }
        }.get()
    }

    private func startSender() {
        Task {
            do {
                try await pool.withConnection { c in self.send(on: c) }
            } catch {
                // No connection to be had: what waits would wait for it again; answer it.
                let stranded = state.withLock { state -> [Waiter] in
                    state.senders -= 1
                    defer { state.waiting.removeAll() }
                    return state.waiting
                }
                for waiter in stranded { waiter.continuation.resume(returning: .failure(error)) }
            }
        }
    }

    /// Sends batch after batch until nothing waits, or until the connection breaks (a
    /// new sender then takes over, on a new connection).
    private func send(on c: PostgresConnection) {
        while true {
            let batch = state.withLock { state -> [Waiter] in
                let taken = Array(state.waiting.prefix(maxBatch))
                state.waiting.removeFirst(taken.count)
                if taken.isEmpty {
                    state.senders -= 1
                } else {
                    state.statistics.batches += 1
                    state.statistics.grants += taken.count
                }
                return taken
            }
            if batch.isEmpty { return }
            batchesCounter.increment()
            grantsCounter.increment(by: batch.count)
            let results = Self.run(c, batch.map(\.reservation))
            for (waiter, result) in zip(batch, results) { waiter.continuation.resume(returning: result) }
            if case .failure(let error as PostgresError) = results[0], error.isConnectionProblem {
                let handOver = state.withLock { state -> Bool in
                    if state.waiting.isEmpty {
                        state.senders -= 1
                        return false
                    }
                    return true
                }
                if handOver { startSender() }
                return
            }
        }
    }

    /// One result per reservation, in order; never throws.
    private static func run(_ c: PostgresConnection, _ batch: [GrantReservation]) -> [Outcome] {
        do {
            return try executeRetrying(c, batch)
        } catch let error as PostgresError where batch.count > 1 && !error.isConnectionProblem {
            // One grant broke the statement (say its tenant was deleted): run them one
            // by one so each gets its own answer.
            return batch.map { reservation in
                Result { try executeRetrying(c, [reservation])[0].get() }
            }
        } catch {
            return batch.map { _ in .failure(error) }
        }
    }

    /// A deadlock or serialization failure rolled the whole statement back: nothing
    /// was granted, so it runs again (batches lock their pools in key order, but other
    /// writers, such as a release touching several pools, do not).
    private static func executeRetrying(
        _ c: PostgresConnection, _ batch: [GrantReservation]
    ) throws -> [Outcome] {
        var attempt = 1
        while true {
            do {
                return try execute(c, batch)
            } catch let error as PostgresError where error.isRetryableTransactionFailure && attempt < maxAttempts {
                attempt += 1
                usleep(UInt32.random(in: 1_000...(4_000 << attempt)))
            }
        }
    }

    static let maxAttempts = 4

    private static func execute(
        _ c: PostgresConnection, _ batch: [GrantReservation]
    ) throws -> [Outcome] {
        let rows = try c.query(
            "SELECT * FROM gpb_grant_batch(\(GrantReservation.many))",
            [GrantReservation.batch(batch)])
        var granted: [ResourceID: [InstanceView]] = [:]
        for row in rows {
            granted[try row.decode("allocation_id") as ResourceID, default: []]
                .append(try AllocationRows.instance(row))
        }
        return batch.map { reservation in
            if let instances = granted[reservation.allocationId] { return .success(instances) }
            return .failure(AllocationStore.LostRace())
        }
    }
}
