import BrokerCore
import Foundation
import PostgresClient
import TestHarness
import TestSupport
import XCTest
import Yams

/// Every closed list of words (BrokerCore's `Vocabulary.swift`) is the same in the three
/// places that hold it: the Swift enum, the database (read from the live catalog of a
/// migrated database, so it holds however the SQL files are laid out: a CHECK on the
/// column, a domain's CHECK, or an enum type) and the OpenAPI document.
final class VocabularyTests: XCTestCase {
    /// A list, where the database keeps it (`table.column`, nil when only the API has it)
    /// and the path to its `enum` in the document's `components/schemas`.
    struct Place {
        var name: String
        var words: [String]
        var column: String?
        var openAPI: [String]
    }

    static func words<Word: RawRepresentable<String> & CaseIterable>(_ type: Word.Type) -> [String] {
        type.allCases.map(\.rawValue)
    }

    static let places: [Place] = [
        Place(name: "RegionKind", words: words(RegionKind.self), column: "regions.kind", openAPI: ["RegionKind"]),
        Place(name: "RegionState", words: words(RegionState.self), column: "regions.state", openAPI: ["RegionState"]),
        Place(name: "ComputeClass", words: words(ComputeClass.self), column: "pools.compute_class", openAPI: ["ComputeClass"]),
        Place(name: "QoS", words: words(QoS.self), column: "pools.qos", openAPI: ["QoS"]),
        Place(name: "AllocationStatus", words: words(AllocationStatus.self), column: "allocations.status", openAPI: ["AllocationStatus"]),
        Place(name: "InstanceState", words: words(InstanceState.self), column: "instances.state", openAPI: ["InstanceState"]),
        Place(name: "LedgerKind", words: words(LedgerKind.self), column: "ledger.kind", openAPI: ["LedgerKind"]),
        Place(name: "EventTypes.allocation", words: EventTypes.allocation, column: nil, openAPI: ["WebhookEventType"]),
        Place(name: "EventTypes.inventory", words: EventTypes.inventory, column: "inventory_events.type", openAPI: ["InventoryEventType"]),
        Place(name: "InventoryChange", words: words(InventoryChange.self), column: nil,
              openAPI: ["InventoryEvent", "properties", "data", "properties", "kind"]),
        Place(name: "WebhookEndpointStatus", words: words(WebhookEndpointStatus.self), column: "webhook_endpoints.status",
              openAPI: ["Webhook", "properties", "status"]),
        Place(name: "WebhookDeliveryStatus", words: words(WebhookDeliveryStatus.self), column: "webhook_deliveries.status",
              openAPI: ["WebhookDelivery", "properties", "status"]),
        Place(name: "ProblemCode", words: words(ProblemCode.self), column: nil, openAPI: ["ProblemCode"]),
        Place(name: "Role", words: words(Role.self), column: "api_tokens.role", openAPI: ["Role"]),
        Place(name: "TokenScope", words: words(TokenScope.self), column: "api_tokens.scopes", openAPI: ["TokenScope"]),
        Place(name: "CallerRole", words: words(CallerRole.self), column: nil, openAPI: ["Identity", "properties", "role"]),
        Place(name: "DryRunOutcome", words: words(DryRunOutcome.self), column: nil, openAPI: ["DryRunOutcome"]),
        Place(name: "AlternativeChange", words: words(AlternativeChange.self), column: nil, openAPI: ["AlternativeChange"]),
        Place(name: "LimitName", words: words(LimitName.self), column: nil,
              openAPI: ["LimitVerdict", "properties", "name"]),
        // Lists that live beside the code they belong to.
        Place(name: "AcceleratorVendor", words: words(AcceleratorVendor.self), column: "pools.gpu_vendor", openAPI: ["AcceleratorVendor"]),
        Place(name: "Precision", words: words(Precision.self), column: nil, openAPI: ["Precision"]),
        Place(name: "PlacementStrategy", words: words(PlacementStrategy.self), column: nil, openAPI: ["PlacementStrategy"]),
        Place(name: "UsageGrouping", words: words(UsageGrouping.self), column: nil, openAPI: ["UsageGrouping"]),
        Place(name: "ResourceLimits.Name", words: words(ResourceLimits.Name.self), column: nil,
              openAPI: ["Problem", "properties", "limitName"]),
        Place(name: "ManifestKinds.workloadKindNames", words: ManifestKinds.workloadKindNames, column: nil,
              openAPI: ["ManifestWorkloadKind"]),
    ]

    func testEveryListIsTheSameInSwiftTheDatabaseAndTheOpenAPIDocument() throws {
        let connection = try PostgresConnection.connect(PostgresConfiguration(url: try TestDatabase.create()))
        let schemas = try Self.openAPISchemas()
        for place in Self.places {
            XCTAssertEqual(Set(place.words).count, place.words.count, "\(place.name) repeats a word")
            if let column = place.column {
                XCTAssertEqual(try Self.databaseWords(connection, column), Set(place.words),
                               "\(place.name): the database's \(column) allows other words than the Swift enum")
            }
            XCTAssertEqual(try Self.openAPIWords(schemas, place.openAPI), place.words,
                           "\(place.name): openapi.yaml's enum at \(place.openAPI.joined(separator: "/")) differs (words or order)")
        }
    }

    /// A list within a list: the statuses retention removes are those `allocations_ended`
    /// indexes (a status missing there would leave its allocations unread by retention).
    func testTheEndedStatusesAreThoseTheRetentionIndexCovers() throws {
        let connection = try PostgresConnection.connect(PostgresConfiguration(url: try TestDatabase.create()))
        let predicate: String = try connection.query(
            "SELECT pg_get_expr(indpred, indrelid) AS p FROM pg_index WHERE indexrelid = 'allocations_ended'::regclass")[0].decode("p")
        XCTAssertEqual(Set(Self.literals(predicate)), Set(AllocationStatus.allCases.filter(\.hasEnded).map(\.rawValue)), predicate)
    }

    /// The check a reader of a broken list would see: a word missing in the database is named.
    func testADatabaseListWithAWordMissingIsSeen() throws {
        let connection = try PostgresConnection.connect(PostgresConfiguration(url: try TestDatabase.create()))
        try connection.executeScript(
            """
            ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_status_check;
            ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_status_check CHECK (status IN ('pending', 'failed'));
            """)
        XCTAssertEqual(try Self.databaseWords(connection, "webhook_deliveries.status"), ["pending", "failed"])
        try connection.executeScript(
            """
            CREATE TYPE gpb_test_colour AS ENUM ('red', 'green');
            CREATE DOMAIN gpb_test_size AS text CHECK (VALUE IN ('s', 'm'));
            CREATE TABLE gpb_test_words (colour gpb_test_colour, colours gpb_test_colour[], size gpb_test_size);
            """)
        XCTAssertEqual(try Self.databaseWords(connection, "gpb_test_words.colour"), ["red", "green"])
        XCTAssertEqual(try Self.databaseWords(connection, "gpb_test_words.colours"), ["red", "green"])
        XCTAssertEqual(try Self.databaseWords(connection, "gpb_test_words.size"), ["s", "m"])
    }

    /// The words a column may hold: an enum type's labels (of the column or of its array's
    /// elements), else the string literals of the CHECKs on that column alone and of its domain.
    static func databaseWords(_ c: PostgresConnection, _ column: String) throws -> Set<String> {
        let parts = column.split(separator: ".").map(String.init)
        let type = "(SELECT coalesce(nullif(t.typelem, 0), t.oid) FROM pg_type t WHERE t.oid = a.atttypid)"
        let labels = try c.query(
            """
            SELECT e.enumlabel AS word FROM pg_attribute a JOIN pg_enum e ON e.enumtypid = \(type)
            WHERE a.attrelid = $1::regclass AND a.attname = $2
            """, [parts[0], parts[1]]).map { try $0.decode("word", as: String.self) }
        if !labels.isEmpty { return Set(labels) }
        let checks = try c.query(
            """
            SELECT pg_get_constraintdef(k.oid) AS def FROM pg_attribute a JOIN pg_constraint k
              ON k.contype = 'c' AND ((k.conrelid = a.attrelid AND k.conkey = ARRAY[a.attnum]) OR k.contypid = \(type))
            WHERE a.attrelid = $1::regclass AND a.attname = $2
            """, [parts[0], parts[1]]).map { try $0.decode("def", as: String.self) }
        guard !checks.isEmpty else { throw TestSetupError("\(column) has no enum type and no CHECK of its own") }
        return Set(checks.flatMap(literals))
    }

    /// The SQL string literals in a constraint's definition (`''` is a quote inside one).
    static func literals(_ definition: String) -> [String] {
        let pattern = try! NSRegularExpression(pattern: "'((?:[^']|'')*)'")
        let range = NSRange(definition.startIndex..., in: definition)
        return pattern.matches(in: definition, range: range).map {
            String(definition[Range($0.range(at: 1), in: definition)!]).replacingOccurrences(of: "''", with: "'")
        }
    }

    static func openAPISchemas() throws -> [String: Any] {
        let document = try XCTUnwrap(try Yams.load(yaml: OpenAPIContractTests.documentText()) as? [String: Any])
        return try XCTUnwrap((document["components"] as? [String: Any])?["schemas"] as? [String: Any])
    }

    static func openAPIWords(_ schemas: [String: Any], _ path: [String]) throws -> [String] {
        var node: Any = schemas
        for key in path {
            node = try XCTUnwrap((node as? [String: Any])?[key], "no \(key) on the way to \(path.joined(separator: "/"))")
        }
        return try XCTUnwrap((node as? [String: Any])?["enum"] as? [String], "no enum of strings at \(path.joined(separator: "/"))")
    }
}
