import BrokerCore
import JSON
import XCTest

/// The fair-share model with plain values: dominant shares, the admission order, the
/// rule against ping-pong, and the admin's share patches.
final class FairShareTests: XCTestCase {
    let capacity: [String: Double] = ["gpus": 16, "gpu:A10": 8, "gpu:T4": 8, "cpu": 64, "memoryGiB": 256]

    func standing(_ held: [String: Double], _ resources: [String: ResourceShare] = [:]) -> TenantStanding {
        TenantStanding(tenant: "t", share: TenantShare(resources: resources), held: held)
    }

    // MARK: dominant share

    func testWithinItsGuaranteesATenantHasShareZero() {
        let s = standing(["gpus": 4, "gpu:A10": 4], ["gpus": ResourceShare(guaranteed: 4), "gpu:A10": ResourceShare(guaranteed: 6)])
        XCTAssertEqual(s.dominantShare(capacity: capacity), 0)
        XCTAssertEqual(s.borrowed("gpu:A10"), 0)
        XCTAssertTrue(s.underSomeGuarantee)
    }

    func testTheShareIsTheLargestBorrowedFractionDividedByItsWeight() {
        // 4 of 16 GPUs borrowed (0.25), 6 of 8 A10 borrowed with weight 2 (0.375), 16 of 64 vCPU (0.25).
        let s = standing(
            ["gpus": 6, "gpu:A10": 6, "cpu": 16],
            ["gpus": ResourceShare(guaranteed: 2), "gpu:A10": ResourceShare(weight: 2)])
        XCTAssertEqual(s.dominantShare(capacity: capacity), 0.375, accuracy: 1e-12)
        XCTAssertEqual(s.borrowed("gpus"), 4)
        XCTAssertFalse(s.underSomeGuarantee)
    }

    func testAResourceThePoolsDoNotHoldCountsForNothing() {
        XCTAssertEqual(standing(["gpu:H100": 8]).dominantShare(capacity: capacity), 0)
        XCTAssertEqual(standing(["gpu:H100": 8]).dominantShare(capacity: ["gpu:H100": 0]), 0)
    }

    func testAHigherWeightBorrowsMoreBeforeItSortsBehind() {
        let heavy = standing(["gpus": 8], ["gpus": ResourceShare(weight: 2)])
        let light = standing(["gpus": 5])
        XCTAssertLessThan(heavy.dominantShare(capacity: capacity), light.dominantShare(capacity: capacity))
    }

    // MARK: reclaim and no ping-pong

    /// T4 pool of 4 one-GPU instances; A and B are each guaranteed 2.
    let t4: [String: Double] = ["gpus": 1, "gpu:T4": 1]
    let t4Capacity: [String: Double] = ["gpus": 4, "gpu:T4": 4]

    func tenant(_ name: String, holds gpus: Double, guaranteed: Double, cpu: Double = 0) -> TenantStanding {
        var held: [String: Double] = gpus > 0 ? ["gpus": gpus, "gpu:T4": gpus] : [:]
        if cpu > 0 { held["cpu"] = cpu }
        return TenantStanding(tenant: name, share: TenantShare(resources: ["gpu:T4": ResourceShare(guaranteed: guaranteed)]), held: held)
    }

    func instances(_ tenant: String, seqs: ClosedRange<Int64>) -> [ReclaimCandidate] {
        seqs.map { ReclaimCandidate(seq: $0, tenant: tenant, use: t4) }
    }

    func victims(_ preemptor: TenantStanding, count: Int, _ others: [TenantStanding], _ candidates: [ReclaimCandidate],
                 capacity: [String: Double]? = nil) -> [Int64] {
        var need: [String: Double] = [:]
        need.add(t4, times: Double(count))
        return FairShare.reclaimVictims(
            for: preemptor, need: need, count: count, candidates: candidates,
            standings: Dictionary(uniqueKeysWithValues: (others + [preemptor]).map { ($0.tenant, $0) }),
            capacity: capacity ?? t4Capacity)
    }

    func testATenantUnderItsGuaranteeReclaimsTheNewestBorrowedInstances() {
        let a = tenant("a", holds: 4, guaranteed: 2)
        let b = tenant("b", holds: 0, guaranteed: 2)
        XCTAssertEqual(victims(b, count: 1, [a], instances("a", seqs: 1...4)), [4])
        XCTAssertEqual(victims(b, count: 2, [a], instances("a", seqs: 1...4)), [4, 3])
        XCTAssertEqual(victims(b, count: 3, [a], instances("a", seqs: 1...4)), [], "3 would pass B's guarantee of 2")
    }

    func testNeverWithinAnyonesGuaranteeAndAllOrNothing() {
        let a = tenant("a", holds: 3, guaranteed: 2)
        let b = tenant("b", holds: 0, guaranteed: 2)
        XCTAssertEqual(victims(b, count: 1, [a], instances("a", seqs: 1...3)), [3])
        XCTAssertEqual(victims(b, count: 2, [a], instances("a", seqs: 1...3)), [], "A borrows only 1: its 2 are its own")
        let full = tenant("a", holds: 4, guaranteed: 4)
        let c = tenant("c", holds: 0, guaranteed: 1)
        XCTAssertEqual(victims(c, count: 1, [full], instances("a", seqs: 1...4)), [], "nothing above A's guarantee")
        let unguaranteed = tenant("d", holds: 0, guaranteed: 0)
        XCTAssertEqual(victims(unguaranteed, count: 1, [a], instances("a", seqs: 1...3)), [], "only tenants with a guarantee reclaim")
    }

    func testTheTenantWithTheHighestShareYieldsFirst() {
        let capacity: [String: Double] = ["gpus": 8, "gpu:T4": 8]
        let a = tenant("a", holds: 4, guaranteed: 0)
        let c = tenant("c", holds: 2, guaranteed: 0)
        let b = tenant("b", holds: 0, guaranteed: 2)
        let candidates = instances("a", seqs: 1...4) + instances("c", seqs: 10...11)
        XCTAssertEqual(victims(b, count: 1, [a, c], candidates, capacity: capacity), [4], "A (share 0.5) before C's newer instance")
        XCTAssertEqual(victims(b, count: 2, [a, c], candidates, capacity: capacity), [4, 3], "A at 3 (0.375) still above C (0.25)")
    }

    /// The preemptor is within its GPU guarantee but borrows much CPU: its share after
    /// (0.5) is not below the victim's (0.25), so nothing is taken.
    func testAReclaimThatWouldNotImproveTheOrderIsRefused() {
        let capacity: [String: Double] = ["gpus": 4, "gpu:T4": 4, "cpu": 64]
        let a = tenant("a", holds: 2, guaranteed: 1)
        let b = tenant("b", holds: 0, guaranteed: 2, cpu: 32)
        XCTAssertEqual(victims(b, count: 1, [a], instances("a", seqs: 1...2), capacity: capacity), [])
        XCTAssertTrue(FairShare.reclaimImprovesFairness(preemptorAfter: 0, victimBefore: 0.25))
        XCTAssertFalse(FairShare.reclaimImprovesFairness(preemptorAfter: 0.25, victimBefore: 0.25))
    }

    /// A took all 4 GPUs; B reclaims its 2; then A asks again: it would pass its own
    /// guarantee, so it takes nothing back. Every sequence of asks preempts at most once.
    func testAfterAReclaimTheVictimCannotTakeItBack() {
        var a = tenant("a", holds: 4, guaranteed: 2)
        var b = tenant("b", holds: 0, guaranteed: 2)
        let taken = victims(b, count: 2, [a], instances("a", seqs: 1...4))
        XCTAssertEqual(taken, [4, 3])
        a.held = ["gpus": 2, "gpu:T4": 2]
        b.held = ["gpus": 2, "gpu:T4": 2]
        for count in 1...2 {
            XCTAssertEqual(victims(a, count: count, [b], instances("b", seqs: 5...6)), [], "A asks \(count) back")
            XCTAssertEqual(victims(b, count: count, [a], instances("a", seqs: 1...2)), [], "B asks \(count) more")
        }
    }

    func testGPUsWithinAModelGuaranteeAreNotBorrowedAsGPUs() {
        let s = standing(["gpus": 3, "gpu:A10": 3], ["gpu:A10": ResourceShare(guaranteed: 2)])
        XCTAssertEqual(s.borrowed("gpu:A10"), 1)
        XCTAssertEqual(s.borrowed("gpus"), 1)
        XCTAssertEqual(s.dominantShare(capacity: capacity), 0.125, accuracy: 1e-12, "1 of 8 A10; 1 of 16 GPUs")
        XCTAssertTrue(s.holdsAboveGuarantee(["gpus": 1, "gpu:A10": 1]))
        XCTAssertFalse(s.holdsAboveGuarantee(["gpus": 2, "gpu:A10": 2]))
    }

    // MARK: admission order

    typealias Entry = AdmissionOrder.Entry

    func testPriorityThenStarvingThenShareThenAge() {
        let order = AdmissionOrder(starvationLimitSeconds: 60, shares: ["low": 0.1, "high": 0.5])
        let entries = [
            Entry(seq: 1, tenant: "high", waitedSeconds: 30),
            Entry(seq: 2, tenant: "low", waitedSeconds: 20),
            Entry(seq: 3, tenant: "high", priority: 10, waitedSeconds: 10),
            Entry(seq: 4, tenant: "high", waitedSeconds: 90),
            Entry(seq: 5, tenant: "low", waitedSeconds: 5),
            Entry(seq: 6, tenant: "new", waitedSeconds: 1),
            Entry(seq: 0, tenant: "high", waitedSeconds: 120),
        ]
        XCTAssertEqual(order.sorted(entries).map(\.seq), [3, 0, 4, 6, 2, 5, 1])
    }

    func testWithoutSharesTheOrderIsAge() {
        let order = AdmissionOrder(starvationLimitSeconds: 300)
        let entries = (1...20).map { Entry(seq: Int64($0), tenant: "t\($0 % 3)", waitedSeconds: Double(40 - $0)) }
        XCTAssertEqual(order.sorted(entries.reversed()).map(\.seq), (1...20).map(Int64.init))
    }

    /// Every pair of a grid of entries: the order is a strict total order (irreflexive,
    /// asymmetric, transitive, and any two different requests compare), so the admitter,
    /// the queue position and a re-sort after each admission all agree.
    func testTheOrderIsAStrictTotalOrderOverEveryCombination() {
        let order = AdmissionOrder(starvationLimitSeconds: 60, shares: ["a": 0, "b": 0.25, "c": 0.25, "d": 1])
        var entries: [Entry] = []
        var seq: Int64 = 0
        for tenant in ["a", "b", "c", "d", "unknown"] {
            for priority in [-1, 0, 5] {
                for waited in [0.0, 59.9, 60, 600] {
                    seq += 1
                    entries.append(Entry(seq: seq * 7 % 61, tenant: tenant, priority: priority, waitedSeconds: waited))
                }
            }
        }
        XCTAssertEqual(Set(entries.map(\.seq)).count, entries.count)
        for x in entries {
            XCTAssertFalse(order.precedes(x, x))
            for y in entries where x.seq != y.seq {
                XCTAssertNotEqual(order.precedes(x, y), order.precedes(y, x), "\(x) \(y)")
                guard order.precedes(x, y) else { continue }
                for z in entries where order.precedes(y, z) {
                    XCTAssertTrue(order.precedes(x, z), "\(x) < \(y) < \(z)")
                }
            }
        }
    }

    // MARK: share patches

    func testAPatchChangesWhatItNamesAndKeepsTheRest() throws {
        let current = TenantShare(
            cohort: "research",
            resources: ["gpu:A10": ResourceShare(guaranteed: 4, weight: 2, borrowingLimit: 4), "cpu": ResourceShare(guaranteed: 8)])
        let patched = try ShareSpec.apply(
            ["resources": ["gpu:A10": ["weight": 3, "borrowingLimit": .null], "cpu": .null, "gpus": ["guaranteed": 2]]],
            to: current)
        XCTAssertEqual(patched.cohort, "research")
        XCTAssertEqual(patched.resources["gpu:A10"], ResourceShare(guaranteed: 4, weight: 3))
        XCTAssertNil(patched.resources["cpu"])
        XCTAssertEqual(patched.resources["gpus"], ResourceShare(guaranteed: 2))
        XCTAssertNil(try ShareSpec.apply(["cohort": .null], to: current).cohort)
    }

    func testInvalidSharesNameTheirFields() {
        XCTAssertThrowsError(try ShareSpec.apply(
            ["cohort": "Not A Name", "resources": ["gpu:": ["guaranteed": 1], "disk": [:], "gpus": ["guaranteed": -1, "weight": 0, "colour": 1]]],
            to: TenantShare())
        ) { error in
            let fields = Set((error as? ValidationFailure)?.errors.map(\.field) ?? [])
            XCTAssertEqual(fields, [
                "cohort", "resources.gpu:", "resources.disk", "resources.gpus.guaranteed", "resources.gpus.weight",
                "resources.gpus.colour",
            ])
        }
    }

    func testResourceKeys() {
        for valid in ["gpus", "cpu", "memoryGiB", "gpu:A10", "gpu:RTX6000Ada", "gpu:a.b_c-d"] {
            XCTAssertTrue(ShareResource.isValid(valid), valid)
        }
        for invalid in ["", "GPUS", "gpu", "gpu:", "gpu:a b", "gpu:" + String(repeating: "x", count: 65), "memory"] {
            XCTAssertFalse(ShareResource.isValid(invalid), invalid)
        }
        XCTAssertEqual(ShareResource.use(gpuSeries: "A10", gpus: 2, cpu: 8, memoryGiB: 32), ["gpus": 2, "gpu:A10": 2])
        XCTAssertEqual(ShareResource.use(gpuSeries: nil, gpus: 0, cpu: 8, memoryGiB: 32), ["cpu": 8, "memoryGiB": 32])
    }

    // MARK: in words

    func testTheSentenceSaysWhyTheNextRequestWaitsOrNot() {
        let under = standing(["gpu:A10": 1], ["gpu:A10": ResourceShare(guaranteed: 4)])
        XCTAssertEqual(
            FairShare.explain(under, capacity: capacity, pending: 0, free: true),
            "It holds 1 of its 4 guaranteed gpu:A10, so its requests come before those of tenants over their guarantees;"
                + " a request that fits free capacity now is granted at once.")
        let borrowing = standing(["gpus": 8, "gpu:A10": 8], ["gpu:A10": ResourceShare(guaranteed: 4, borrowingLimit: 4)])
        XCTAssertEqual(
            FairShare.explain(borrowing, capacity: capacity, pending: 2, free: false),
            "It borrows above its guarantees (weighted dominant share 0.500), so requests of tenants with a lower share come first;"
                + " it has reached its borrowing limit of gpu:A10; 2 of its requests wait in the queue, in order of priority,"
                + " share and age; no capacity is free now: a new request waits.")
    }
}
