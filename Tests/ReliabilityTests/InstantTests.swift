import BrokerCore
import Foundation
import JSON
import TestHarness
import TestSupport
import XCTest

/// Issue 18, "instant": LISTEN/NOTIFY makes every broker act on another broker's
/// write at once, whatever its intervals and cache lifetimes.
final class InstantTests: XCTestCase {
    /// A pending allocation on a broker whose workers run once a minute is admitted
    /// right after a pool report made through another broker.
    func testPendingAllocationAdmittedWithinASecondOfAPoolReport() throws {
        let url = try TestDatabase.create()
        let waiting = try BrokerProcess(databaseURL: url, reconcileInterval: 60)
        let reporting = try BrokerProcess(databaseURL: url, reconcileInterval: 60)
        defer { [waiting, reporting].forEach { $0.stop() } }
        try waiting.waitReady()
        try reporting.waitReady()
        try Seed.region(port: reporting.port, "r1", primary: true)
        try Seed.pool(port: reporting.port, region: "r1", "p1", capacity: 1)
        let token = try Seed.tenant(port: waiting.port)
        let first = try HTTP.request(port: waiting.port, "POST", "/v1/allocations", token: token, json: Seed.allocation(key: "a"))
        XCTAssertEqual(first.status, 201, first.text)
        var queued = Seed.allocation(key: "b").objectValue!
        queued["queue"] = .bool(true)
        let pending = try HTTP.request(port: waiting.port, "POST", "/v1/allocations", token: token, json: .object(queued))
        XCTAssertEqual(pending.status, 202, pending.text)
        let id = try XCTUnwrap(pending.json["id"]?.stringValue)

        let reported = Date()
        try Seed.pool(port: reporting.port, region: "r1", "p1", capacity: 2)
        let admittedIn = try awaitAdmission(port: waiting.port, id, token: token, since: reported)
        report("18 instant admission", "--reconcile-interval 60: pending → active \(ms(admittedIn)) after the pool report (through another broker)")
    }

    /// A request queued over its tenant's budget on a broker whose workers run once a
    /// minute is admitted right after the budget is raised through another broker.
    func testPendingAllocationAdmittedWithinASecondOfABudgetRaise() throws {
        let url = try TestDatabase.create()
        let waiting = try BrokerProcess(databaseURL: url, reconcileInterval: 60)
        let admin = try BrokerProcess(databaseURL: url, reconcileInterval: 60)
        defer { [waiting, admin].forEach { $0.stop() } }
        try waiting.waitReady()
        try admin.waitReady()
        try Seed.region(port: admin.port, "r1", primary: true)
        try Seed.pool(port: admin.port, region: "r1", "p1", capacity: 10, price: 1)
        let created = try HTTP.request(
            port: admin.port, "POST", "/v1/admin/tenants", token: BrokerProcess.adminToken,
            json: .object(["name": .string("t"), "quota": .object(["spendPerMonth": .number(1.5)])]))
        let tenant = try XCTUnwrap(created.json["id"]?.stringValue, created.text)
        let token = try XCTUnwrap(created.json["token"]?.stringValue)
        // One replica for an hour at 1/h commits 1 of the 1.5: the second waits for budget.
        func request(_ key: String) -> JSONValue {
            var body = Seed.allocation(key: key).objectValue!
            body["leaseSeconds"] = .number(3600)
            body["queue"] = .bool(true)
            return .object(body)
        }
        let first = try HTTP.request(port: waiting.port, "POST", "/v1/allocations", token: token, json: request("a"))
        XCTAssertEqual(first.status, 201, first.text)
        let pending = try HTTP.request(port: waiting.port, "POST", "/v1/allocations", token: token, json: request("b"))
        XCTAssertEqual(pending.status, 202, pending.text)
        let id = try XCTUnwrap(pending.json["id"]?.stringValue)

        let raised = Date()
        let patched = try HTTP.request(
            port: admin.port, "PATCH", "/v1/admin/tenants/\(tenant)", token: BrokerProcess.adminToken,
            json: .object(["quota": .object(["spendPerMonth": .number(3)])]))
        XCTAssertEqual(patched.status, 200, patched.text)
        let admittedIn = try awaitAdmission(port: waiting.port, id, token: token, since: raised)
        report("20 budget raise admission", "--reconcile-interval 60: pending → active \(ms(admittedIn)) after the budget was raised (through another broker)")
    }

    /// Polls pending allocation `id` for up to 10 s; asserts it became active within a
    /// second of `since` (the brokers' admitter interval is 60 s) and returns how long it took.
    private func awaitAdmission(port: Int, _ id: String, token: String, since: Date) throws -> TimeInterval {
        var status = "pending"
        while status == "pending" && Date().timeIntervalSince(since) < 10 {
            usleep(10_000)
            status = try HTTP.request(port: port, "GET", "/v1/allocations/\(id)", token: token).json["status"]?.stringValue ?? "?"
        }
        let admittedIn = Date().timeIntervalSince(since)
        XCTAssertEqual(status, "active")
        XCTAssertLessThan(admittedIn, 1.0, "admitted \(ms(admittedIn)) after the change; the admitter's interval is 60 s")
        return admittedIn
    }

    /// A token rotated through one broker stops working on another that has it cached.
    func testRotatedTokenStopsWorkingOnAnotherBrokerAtOnce() throws {
        let url = try TestDatabase.create()
        let a = try BrokerProcess(databaseURL: url)
        let b = try BrokerProcess(databaseURL: url)
        defer { [a, b].forEach { $0.stop() } }
        try a.waitReady()
        try b.waitReady()
        let created = try HTTP.request(
            port: a.port, "POST", "/v1/admin/tenants", token: BrokerProcess.adminToken, json: .object(["name": .string("t")]))
        let tenant = try XCTUnwrap(created.json["id"]?.stringValue)
        let token = try XCTUnwrap(created.json["token"]?.stringValue)
        XCTAssertEqual(try HTTP.request(port: b.port, "GET", "/v1/allocations", token: token).status, 200)  // cached on b

        let rotated = try HTTP.request(port: a.port, "POST", "/v1/admin/tenants/\(tenant)/tokens", token: BrokerProcess.adminToken)
        XCTAssertTrue([200, 201].contains(rotated.status), rotated.text)
        let started = Date()
        var status = 200
        while status == 200 && Date().timeIntervalSince(started) < 2 {
            status = try HTTP.request(port: b.port, "GET", "/v1/allocations", token: token).status
            if status == 200 { usleep(2_000) }
        }
        let refusedIn = Date().timeIntervalSince(started)
        XCTAssertEqual(status, 401)
        // Without the notification b keeps the token for its cache lifetime, 1 s.
        XCTAssertLessThan(refusedIn, 0.2, "the old token worked on b for \(ms(refusedIn))")
        report("18 instant token rotation", "old token refused by the other broker \(ms(refusedIn)) after the rotation answered (cache lifetime 1 s)")
    }
}
