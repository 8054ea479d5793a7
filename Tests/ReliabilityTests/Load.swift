import BrokerCore
import Foundation
import JSON
import TestHarness
import TestSupport

/// What one logical allocation request ended as, after retries.
struct Outcome: Sendable {
    var key: String
    var status: Int  // final status; 0 when it never got an answer
    var allocationId: String?
    var placed: Int
    var attempts: Int
    var transportErrors: Int
    var inDoubt: Int  // transport errors after the request was sent (not refused connections)
    var unavailable: Int  // 503 answers seen
    var badStatuses: [Int]  // 5xx other than 503, and unexpected 4xx
    var ids: Set<String>  // every allocation id answered for this key (must be one)
}

/// One answered HTTP attempt, for timelines.
struct Attempt: Sendable {
    var started: Double  // seconds since the run's start
    var seconds: Double
    var status: Int  // 0: transport error
    var retryAfter: String?
}

/// Clients on plain threads, each sending request after request until `finish()`:
/// `request(client, key)` with keys "c<client>-<n>", unique per logical request.
struct LoadRun {
    private let stop = Flag()
    private let join: () -> Void

    init(clients: Int, _ request: @escaping @Sendable (_ client: Int, _ key: String) -> Void) {
        let stop = self.stop
        join = startThreads(clients) { client in
            var n = 0
            while !stop.isSet {
                request(client, "c\(client)-\(n)")
                n += 1
            }
        }
    }

    /// Stops the clients after their current request and waits for them.
    func finish() {
        stop.set()
        join()
    }
}

/// `clients` threads POSTing small allocations (`Load.allocate`: keyed, retried while
/// in doubt) until `finish()`; client i starts on `ports[i % ports.count]`.
struct AllocationLoad {
    let origin: Date
    let outcomes: Collector<Outcome>
    let attempts: Collector<Attempt>
    private let run: LoadRun

    init(clients: Int, ports: [Int], token: String) {
        let (origin, outcomes, attempts) = (Date(), Collector<Outcome>(), Collector<Attempt>())
        (self.origin, self.outcomes, self.attempts) = (origin, outcomes, attempts)
        run = LoadRun(clients: clients) { client, key in
            outcomes.append(Load.allocate(
                ports: ports, first: client % ports.count, token: token, key: key, body: Seed.allocation(key: key),
                origin: origin, attempts: attempts))
        }
    }

    func finish() { run.finish() }
}

enum Load {
    /// POSTs one allocation with an Idempotency-Key, retrying in-doubt attempts
    /// (transport errors, 503) with the same key, rotating over `ports`, until an
    /// answer or `giveUpAfter` seconds.
    static func allocate(
        ports: [Int], first: Int, token: String, key: String, body: JSONValue, giveUpAfter: Double = 60,
        origin: Date = Date(), attempts log: Collector<Attempt>? = nil
    ) -> Outcome {
        var outcome = Outcome(
            key: key, status: 0, allocationId: nil, placed: 0, attempts: 0, transportErrors: 0, inDoubt: 0, unavailable: 0,
            badStatuses: [], ids: [])
        let deadline = Date().addingTimeInterval(giveUpAfter)
        var index = first
        while Date() < deadline {
            let port = ports[index % ports.count]
            outcome.attempts += 1
            let started = Date()
            do {
                let reply = try HTTP.request(
                    port: port, "POST", "/v1/allocations", token: token, json: body, headers: ["Idempotency-Key": key],
                    timeoutSeconds: 20)
                log?.append(Attempt(
                    started: started.timeIntervalSince(origin), seconds: Date().timeIntervalSince(started),
                    status: reply.status, retryAfter: reply.headers["retry-after"]))
                if reply.status == 503 {
                    outcome.unavailable += 1
                    usleep(100_000)
                    continue
                }
                outcome.status = reply.status
                if reply.status == 201 || reply.status == 200 || reply.status == 202 {
                    let id = reply.json["id"]?.stringValue
                    outcome.allocationId = id
                    outcome.placed = reply.json["placedReplicas"]?.int ?? 0
                    if let id { outcome.ids.insert(id) }
                } else if reply.status != 409 {
                    outcome.badStatuses.append(reply.status)
                }
                return outcome
            } catch {
                log?.append(Attempt(
                    started: started.timeIntervalSince(origin), seconds: Date().timeIntervalSince(started), status: 0,
                    retryAfter: nil))
                outcome.transportErrors += 1
                if (error as? TransportError)?.connectErrno == nil { outcome.inDoubt += 1 }
                index += 1  // another broker, if there is one
                usleep(50_000)
            }
        }
        return outcome
    }

    /// Replays a key once more (same body) and returns the allocation id answered.
    static func replay(port: Int, token: String, key: String, body: JSONValue) -> String? {
        guard let reply = try? HTTP.request(
            port: port, "POST", "/v1/allocations", token: token, json: body, headers: ["Idempotency-Key": key])
        else { return nil }
        return reply.json["id"]?.stringValue
    }
}
