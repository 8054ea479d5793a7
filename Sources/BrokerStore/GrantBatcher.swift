import BrokerCore
import Foundation
import Metrics
import PostgresClient
import Synchronization

/// A planned grant: `gpb_grant`'s arguments, encoded by the request's own task
/// rather than by the batch's leader.
struct GrantReservation: Sendable {
    var allocationId: ResourceID
    var allocation: PostgresJSON
    var placements: PostgresJSON
    var actor: String
    var policiesVersion: String

    /// Inside a transaction, on its own.
    func reserve(_ c: PostgresConnection) throws -> [InstanceView] {
        try AllocationStore.reservation(
            c, "SELECT * FROM gpb_grant($1::jsonb, $2::jsonb, $3)", [allocation, placements, actor])
    }

    /// One element of `gpb_grant_batch`'s argument.
    var batchElement: String {
        #"{"allocation":\#(allocation.rawJSON),"placements":\#(placements.rawJSON),"actor":\#(JSONValue.string(actor).jsonText),"policies":"\#(policiesVersion)"}"#
    }
}

/// Group commit for grants outside a transaction. A grant that arrives while
/// `maxConcurrentBatches` batches are running waits; when a batch ends, its leader
/// hands over to the oldest waiter, which sends everything queued by then (up to
/// `maxBatch`) as one `gpb_grant_batch` statement: one round trip and one commit for
/// all of them, and on a hot pool one row lock per batch instead of one per grant.
/// A grant that arrives with no batch running leads at once, so a lone request waits
/// for nobody. Every grant is answered after its batch commits.
final class GrantBatcher: Sendable {
    let pool: PostgresPool
    let maxBatch: Int
    let maxConcurrentBatches: Int

    private enum Role: Sendable {
        case lead
        case done(Result<[InstanceView], any Error>)
    }

    private struct Waiter {
        var reservation: GrantReservation
        var continuation: CheckedContinuation<Role, Never>
    }

    /// Batches sent and the grants in them, since start: their ratio is the mean batch size.
    struct Statistics: Sendable {
        var batches = 0
        var grants = 0
    }

    private struct State {
        var running = 0
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
        let role = await withCheckedContinuation { (continuation: CheckedContinuation<Role, Never>) in
            let leadNow = state.withLock { state -> Bool in
                if state.running < maxConcurrentBatches {
                    state.running += 1
                    return true
                }
                state.waiting.append(Waiter(reservation: reservation, continuation: continuation))
                return false
            }
            if leadNow { continuation.resume(returning: .lead) }
        }
        switch role {
        case .done(let result):
            return try result.get()
        case .lead:
            return try await lead(with: reservation)
        }
    }

    private func lead(with own: GrantReservation) async throws -> [InstanceView] {
        let followers = state.withLock { state -> [Waiter] in
            let taken = Array(state.waiting.prefix(maxBatch - 1))
            state.waiting.removeFirst(taken.count)
            state.statistics.batches += 1
            state.statistics.grants += 1 + taken.count
            return taken
        }
        batchesCounter.increment()
        grantsCounter.increment(by: 1 + followers.count)
        let results = await run([own] + followers.map(\.reservation))
        for (follower, result) in zip(followers, results.dropFirst()) {
            follower.continuation.resume(returning: .done(result))
        }
        let next = state.withLock { state -> Waiter? in
            if state.waiting.isEmpty {
                state.running -= 1
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.continuation.resume(returning: .lead)
        return try results[0].get()
    }

    /// One result per reservation, in order; never throws.
    private func run(_ batch: [GrantReservation]) async -> [Result<[InstanceView], any Error>] {
        do {
            return try await pool.withConnection { c in
                do {
                    return try Self.executeRetrying(c, batch)
                } catch let error as PostgresError where batch.count > 1 && !error.isConnectionProblem {
                    // One grant broke the statement (say its tenant was deleted): run
                    // them one by one so each gets its own answer.
                    return batch.map { reservation in
                        Result { try Self.executeRetrying(c, [reservation])[0].get() }
                    }
                }
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
    ) throws -> [Result<[InstanceView], any Error>] {
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
    ) throws -> [Result<[InstanceView], any Error>] {
        let rows = try c.query(
            "SELECT * FROM gpb_grant_batch($1::jsonb)",
            [PostgresJSON(rawJSON: "[" + batch.map(\.batchElement).joined(separator: ",") + "]")])
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
