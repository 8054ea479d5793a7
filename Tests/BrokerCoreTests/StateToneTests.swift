@testable import BrokerCore
import XCTest

/// The CLI's colours and the console's badges come from `StateTone`: a word that stands
/// in several lists (`active`, `released`) must read the same in all of them.
final class StateToneTests: XCTestCase {
    func testAWordHasOneToneInEveryListItStandsIn() {
        var seen: [String: StateTone] = [:]
        for (word, tone) in StateTone.allWords {
            if let earlier = seen[word] { XCTAssertEqual(tone, earlier, "'\(word)' reads two ways") }
            seen[word] = tone
        }
        XCTAssertEqual(StateTone.of("active"), .good)
        XCTAssertEqual(StateTone.of("unschedulable"), .stuck)
        XCTAssertEqual(StateTone.of("released"), .over)
        XCTAssertNil(StateTone.of("primary"), "the console's own words are not the API's")
    }

    func testEventTypesAreTheLedgerKindsAndTheInventoryChanges() {
        XCTAssertEqual(EventTypes.allocation.first, "allocation.reserved")
        XCTAssertEqual(EventTypes.allocation.count, LedgerKind.allCases.count)
        XCTAssertEqual(EventTypes.inventory, ["region.created", "region.changed", "region.deleted",
                                              "pool.created", "pool.changed", "pool.deleted"])
    }

    func testAProblemTypeIsItsCodeWithDashes() {
        XCTAssertEqual(ProblemCode.idempotencyKeyReused.typeURI, "https://gpubroker.dev/problems/idempotency-key-reused")
    }
}
