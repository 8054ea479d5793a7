import BrokerCore
import Foundation
import JSON
import MicroHTTP
import PostgresClient
import TestHarness
import TestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Issue 18, watch: Server-Sent Events of the ledger, resumable with Last-Event-ID.
final class WatchTests: XCTestCase {
    /// A stream resumed with Last-Event-ID after its broker was killed and restarted
    /// gets every event of the tenant once, in feed order, including those that
    /// committed through another broker while it was down.
    func testStreamResumedAfterBrokerRestartGetsEveryEventOnce() throws {
        let url = try TestDatabase.create()
        var a = try BrokerProcess(databaseURL: url)
        let b = try BrokerProcess(databaseURL: url)
        defer { [a, b].forEach { $0.stop() } }
        try a.waitReady()
        try b.waitReady()
        try Seed.region(port: b.port, "r1", primary: true)
        try Seed.pool(port: b.port, region: "r1", "p1", capacity: 1000)
        let token = try Seed.tenant(port: b.port)
        let other = try Seed.tenant(port: b.port, "other")
        func traffic(_ round: Int) throws {
            for index in 0..<5 {
                let made = try HTTP.request(port: b.port, "POST", "/v1/allocations", token: token, json: Seed.allocation(replicas: 2, key: "\(round)-\(index)"))
                XCTAssertEqual(made.status, 201)
                if index % 2 == 0, let id = made.json["id"]?.stringValue {
                    _ = try HTTP.request(port: b.port, "DELETE", "/v1/allocations/\(id)", token: token)
                }
            }
            _ = try HTTP.request(port: b.port, "POST", "/v1/allocations", token: other, json: Seed.allocation(key: "o\(round)"))
        }

        let admin = try SSEClient(port: a.port, path: "/v1/events", token: BrokerProcess.adminToken)
        var client = try SSEClient(port: a.port, path: "/v1/events", token: token)
        try traffic(1)
        var got = try client.read(atLeast: 15, within: 10)  // 5 allocations × 2 reserved + 3 × 2 released
        XCTAssertEqual(admin.headers["content-type"], "text/event-stream")
        XCTAssertGreaterThanOrEqual(try admin.read(atLeast: 17, within: 10).count, 17, "the admin sees every tenant's events")
        a.kill9()
        client.close()
        try traffic(2)  // committed while the stream's broker is down
        a = try BrokerProcess(databaseURL: url)
        try a.waitReady()
        try traffic(3)
        let lastId = try XCTUnwrap(got.last?.id)
        client = try SSEClient(port: a.port, path: "/v1/events", token: token, lastEventId: lastId)
        defer { client.close() }
        got += try client.read(atLeast: 32, within: 15)

        let db = try database(url)
        let expected: [String] = try db.query(
            """
            SELECT l.xid || '-' || l.seq AS id FROM ledger l JOIN allocations al ON al.id = l.allocation_id
            JOIN tenants t ON t.id = al.tenant_id WHERE t.name = 'load' ORDER BY l.xid, l.seq
            """).map { try $0.decode("id") }
        let ids = got.map(\.id)
        XCTAssertEqual(ids, expected, "every event once, in feed order, across the restart")
        XCTAssertTrue(got.allSatisfy { $0.event.hasPrefix("allocation.") })
        report("18 watch resume", "\(expected.count) events: \(ids.count) received over two streams, \(ids.count - Set(ids).count) repeats, \(Set(expected).subtracting(ids).count) missing, broker killed and restarted between them")
    }

    /// A client that never reads gets a last `dropped` event once 256 KiB wait for it
    /// in the broker; resuming from that event's id gets the rest, nothing twice. Events
    /// are made in rounds until the broker counts the drop, up to a bound in events:
    /// enough to fill the client's receive buffer (fixed at 256 KiB, which the kernel
    /// doubles), the broker's send buffer at its largest (tcp_wmem) and the broker's
    /// 256 KiB, so the outcome does not depend on how much the kernel buffers under
    /// load, and a broker without the bound fails at that count.
    func testSlowReaderIsDroppedWithAResumableLastEvent() throws {
        let url = try TestDatabase.create()
        let broker = try BrokerProcess(databaseURL: url)
        defer { broker.stop() }
        try broker.waitReady()
        try Seed.region(port: broker.port, "r1", primary: true)
        try Seed.pool(port: broker.port, region: "r1", "p1", capacity: 1000)
        let token = try Seed.tenant(port: broker.port)
        let slow = try SSEClient(port: broker.port, path: "/v1/events", token: token, receiveBuffer: 256 * 1024)
        defer { slow.close() }
        // An allocation event's frame is over 300 bytes.
        let bound = (2 * 256 * 1024 + Self.largestSendBuffer + 256 * 1024) / 300
        var made = 0
        var round = 0
        while try Self.streamsDropped(broker.port) == 0 {
            guard made < bound else { return XCTFail("no drop after \(made) events: the broker buffers without bound") }
            for index in 0..<10 {
                let answer = try HTTP.request(
                    port: broker.port, "POST", "/v1/allocations", token: token, json: Seed.allocation(replicas: 100, key: "s\(round)-\(index)"))
                XCTAssertEqual(answer.status, 201)
                _ = try HTTP.request(port: broker.port, "DELETE", "/v1/allocations/\(answer.json["id"]!.stringValue!)", token: token)
            }
            made += 2000
            round += 1
            usleep(500_000)  // the hub's next rounds write them
        }
        let first = try slow.readAll(atLeast: made + 1, within: 60)
        let last = try XCTUnwrap(first.last)
        XCTAssertEqual(last.event, "dropped", "the stream ends with a clear last event")
        XCTAssertTrue(last.data.contains("keep up"))
        let delivered = first.filter { $0.event.hasPrefix("allocation.") }
        XCTAssertEqual(last.id, delivered.last?.id, "its id is the last event written")
        let resumed = try SSEClient(port: broker.port, path: "/v1/events", token: token, lastEventId: last.id)
        defer { resumed.close() }
        let rest = try resumed.read(atLeast: made - delivered.count, within: 30)
        let ids = (delivered + rest).map(\.id)
        let expected: [String] = try database(url).query(
            "SELECT l.xid || '-' || l.seq AS id FROM ledger l WHERE l.allocation_id IS NOT NULL ORDER BY l.xid, l.seq"
        ).map { try $0.decode("id") }
        XCTAssertEqual(ids, expected, "every event once, in feed order")
        report("18 watch slow reader", "dropped after \(delivered.count) of \(made) events (bound \(bound)); resumed from its last event id: \(rest.count) more, \(ids.count - Set(ids).count) repeats")
    }

    /// The most the kernel lets a TCP send buffer grow to (the last of tcp_wmem).
    static var largestSendBuffer: Int {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/tcp_wmem", encoding: .utf8)) ?? ""
        return Int(text.split(whereSeparator: \.isWhitespace).last ?? "") ?? 16 * 1024 * 1024
    }

    /// `event_streams_dropped_total` from the broker's /metrics.
    static func streamsDropped(_ port: Int) throws -> Int {
        let text = try HTTP.request(port: port, "GET", "/metrics").text
        let line = text.split(separator: "\n").first { $0.hasPrefix("event_streams_dropped_total ") }
        return line.flatMap { Int(Double($0.split(separator: " ").last ?? "") ?? 0) } ?? 0
    }

    /// The admin's stream carries the inventory's changes (region and pool reports) in
    /// feed order among the allocation events, each written with its change (a refused
    /// change or a grant's counters write none); the admin resumes them with
    /// Last-Event-ID; a tenant's stream and pages never show them.
    func testAdminWatchesInventoryChangesAndTenantsNever() throws {
        let url = try TestDatabase.create()
        let broker = try BrokerProcess(databaseURL: url)
        defer { broker.stop() }
        try broker.waitReady()
        let port = broker.port
        let adminToken = BrokerProcess.adminToken
        try Seed.region(port: port, "r1", primary: true)
        try Seed.pool(port: port, region: "r1", "p1", capacity: 10)
        let token = try Seed.tenant(port: port)
        let admin = try SSEClient(port: port, path: "/v1/events", token: adminToken)
        defer { admin.close() }
        let tenant = try SSEClient(port: port, path: "/v1/events", token: token)
        defer { tenant.close() }

        try Seed.region(port: port, "r2", primary: false)
        try Seed.pool(port: port, region: "r2", "p2", capacity: 5)
        XCTAssertEqual(try HTTP.request(port: port, "POST", "/v1/allocations", token: token, json: Seed.allocation(key: "a")).status, 201)
        try Seed.pool(port: port, region: "r1", "p1", capacity: 20)
        try Seed.pool(port: port, region: "r1", "p1", capacity: 20)  // the same report again: no change
        let cordon = try HTTP.request(
            port: port, "PUT", "/v1/admin/regions/r2", token: adminToken, json: Seed.regionBody("r2", primary: false, state: "cordoned"))
        XCTAssertEqual(cordon.status, 200, cordon.text)
        XCTAssertEqual(try HTTP.request(port: port, "DELETE", "/v1/admin/regions/r1/pools/p1", token: adminToken).status, 409)
        XCTAssertEqual(try HTTP.request(port: port, "DELETE", "/v1/admin/regions/r2/pools/p2", token: adminToken).status, 204)
        XCTAssertEqual(try HTTP.request(port: port, "POST", "/v1/allocations", token: token, json: Seed.allocation(key: "b")).status, 201)

        let expected = [
            "region.created", "pool.created", "allocation.reserved", "pool.changed", "region.changed", "pool.deleted",
            "allocation.reserved",
        ]
        let seen = try admin.readAll(atLeast: expected.count, within: 10)
        XCTAssertEqual(seen.map(\.event), expected)
        let changed = try JSONValue.parse(Array(seen[3].data.utf8))["data"]
        XCTAssertEqual(changed?["poolId"], .string("p1"))
        XCTAssertEqual(changed?["current"]?["capacity"], .number(20))
        XCTAssertEqual(changed?["previous"]?["capacity"], .number(10))
        let cordoned = try JSONValue.parse(Array(seen[4].data.utf8))["data"]
        XCTAssertEqual(cordoned?["current"]?["state"], .string("cordoned"))
        XCTAssertEqual(cordoned?["previous"]?["state"], .string("active"))
        XCTAssertEqual(try tenant.readAll(atLeast: 2, within: 10).map(\.event), ["allocation.reserved", "allocation.reserved"])

        let resumed = try SSEClient(port: port, path: "/v1/events", token: adminToken, lastEventId: seen[2].id)
        defer { resumed.close() }
        XCTAssertEqual(try resumed.readAll(atLeast: 4, within: 10).map(\.id), seen[3...].map(\.id))
        func pageTypes(_ token: String) throws -> [String] {
            let page = try HTTP.request(port: port, "GET", "/v1/events?after=\(seen[0].id)&limit=1000", token: token)
            return (page.json["events"]?.arrayValue ?? []).compactMap { $0["type"]?.stringValue }
        }
        XCTAssertEqual(try pageTypes(adminToken), Array(expected.dropFirst()))
        XCTAssertEqual(try pageTypes(token), ["allocation.reserved", "allocation.reserved"])
    }

    /// One allocation's stream: only its events; another tenant's allocation is 404.
    func testAllocationStreamAndIsolation() throws {
        let url = try TestDatabase.create()
        let broker = try BrokerProcess(databaseURL: url)
        defer { broker.stop() }
        try broker.waitReady()
        try Seed.region(port: broker.port, "r1", primary: true)
        try Seed.pool(port: broker.port, region: "r1", "p1", capacity: 100)
        let token = try Seed.tenant(port: broker.port)
        let other = try Seed.tenant(port: broker.port, "other")
        let made = try HTTP.request(port: broker.port, "POST", "/v1/allocations", token: token, json: Seed.allocation(replicas: 3, key: "w"))
        let id = try XCTUnwrap(made.json["id"]?.stringValue)
        let stranger = try HTTP.request(
            port: broker.port, "GET", "/v1/allocations/\(id)/events", token: other, headers: ["Accept": "text/event-stream"])
        XCTAssertEqual(stranger.status, 404)
        let badId = try HTTP.request(
            port: broker.port, "GET", "/v1/events", token: token, headers: ["Accept": "text/event-stream", "Last-Event-ID": "x"])
        XCTAssertEqual(badId.status, 400)
        // From the start of the feed: the three reserved rows already committed.
        let client = try SSEClient(port: broker.port, path: "/v1/allocations/\(id)/events", token: token, lastEventId: "0-0")
        defer { client.close() }
        _ = try HTTP.request(port: broker.port, "POST", "/v1/allocations", token: token, json: Seed.allocation(key: "unrelated"))
        XCTAssertEqual(try HTTP.request(port: broker.port, "DELETE", "/v1/allocations/\(id)", token: token).status, 200)
        let events = try client.read(atLeast: 6, within: 10)
        XCTAssertEqual(events.map(\.event), Array(repeating: "allocation.reserved", count: 3) + Array(repeating: "allocation.released", count: 3))
        XCTAssertTrue(events.allSatisfy { $0.data.contains(id) })
        let page = try HTTP.request(port: broker.port, "GET", "/v1/events?limit=2", token: token)
        XCTAssertEqual(page.status, 200)
        XCTAssertEqual(page.json["events"]?.arrayValue?.count, 2)
    }
}

/// A blocking Server-Sent Events client over a raw socket (the body is chunked).
final class SSEClient {
    struct Event { var id: String; var event: String; var data: String }

    let fd: Int32
    private(set) var headers = HTTPHeaders()
    private var raw: [UInt8] = []
    private var body: [UInt8] = []

    /// `receiveBuffer`: SO_RCVBUF, fixed instead of grown by the kernel.
    init(port: Int, path: String, token: String, lastEventId: String? = nil, receiveBuffer: Int? = nil) throws {
        fd = try RawClient.connect(port: port, timeoutSeconds: 1)
        if var size = receiveBuffer.map(Int32.init) {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var head = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nAuthorization: Bearer \(token)\r\n"
        if let lastEventId { head += "Last-Event-ID: \(lastEventId)\r\n" }
        try RawClient.sendAll(fd, Array((head + "\r\n").utf8))
        let started = Date()
        while headers.count == 0 {
            guard Date().timeIntervalSince(started) < 10 else { throw TestSetupError("no stream headers") }
            pull()
            if let end = find(Array("\r\n\r\n".utf8), in: raw) {
                let reply = try RawClient.parse(Array(raw[..<(end + 4)]))
                guard reply.status == 200 else { throw TestSetupError("stream answered \(reply.status)") }
                headers = reply.headers
                raw.removeFirst(end + 4)
            }
        }
    }

    func close() { Glibc.close(fd) }

    /// Ledger events until `count` came or `seconds` passed.
    func read(atLeast count: Int, within seconds: Double) throws -> [Event] {
        try readAll(atLeast: count, within: seconds).filter { !$0.id.isEmpty && $0.event.hasPrefix("allocation.") }
    }

    /// Named events (comments skipped) until `count` came, the stream's last event came, or `seconds` passed.
    func readAll(atLeast count: Int, within seconds: Double) throws -> [Event] {
        var events: [Event] = []
        let started = Date()
        while events.count < count && Date().timeIntervalSince(started) < seconds {
            if !pull() && raw.isEmpty && body.isEmpty { break }
            dechunk()
            while let end = find(Array("\n\n".utf8), in: body) {
                let block = String(decoding: body[..<end], as: UTF8.self)
                body.removeFirst(end + 2)
                var event = Event(id: "", event: "message", data: "")
                for line in block.split(separator: "\n") {
                    if line.hasPrefix("id: ") { event.id = String(line.dropFirst(4)) }
                    if line.hasPrefix("event: ") { event.event = String(line.dropFirst(7)) }
                    if line.hasPrefix("data: ") { event.data = String(line.dropFirst(6)) }
                }
                if event.event != "message" { events.append(event) }
                if event.event == "dropped" || event.event == "shutdown" { return events }  // the stream's last
            }
        }
        return events
    }

    /// False once the server closed the connection.
    @discardableResult
    private func pull() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count > 0 { raw.append(contentsOf: chunk[0..<count]) }
        return count != 0
    }

    private func dechunk() {
        while let lineEnd = find(Array("\r\n".utf8), in: raw) {
            guard let size = Int(String(decoding: raw[..<lineEnd], as: UTF8.self), radix: 16),
                raw.count >= lineEnd + 2 + size + 2 else { return }
            body.append(contentsOf: raw[(lineEnd + 2)..<(lineEnd + 2 + size)])
            raw.removeFirst(lineEnd + 2 + size + 2)
        }
    }

    private func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        return (0...(haystack.count - needle.count)).first { Array(haystack[$0..<($0 + needle.count)]) == needle }
    }
}
