import BrokerStore
import Foundation
import JSON
import PostgresClient
import TestHarness
import TestSupport
import XCTest
import Yams

/// The region and pool bodies of inventory events are written in SQL, in one place
/// (gpb_region_json, gpb_pool_json): their members are the document's
/// InventoryRegionState and InventoryPoolState properties, no more and no fewer.
final class InventoryEventShapeTests: XCTestCase {
    func properties(_ schema: String) throws -> Set<String> {
        let document = try XCTUnwrap(try Yams.load(yaml: OpenAPIContractTests.documentText()) as? [String: Any])
        let schemas = try XCTUnwrap((document["components"] as? [String: Any])?["schemas"] as? [String: Any])
        let object = try XCTUnwrap(schemas[schema] as? [String: Any])
        XCTAssertEqual(object["additionalProperties"] as? Bool, false, "\(schema) is closed")
        return Set(try XCTUnwrap(object["properties"] as? [String: Any]).keys)
    }

    func testRegionAndPoolEventBodiesAreTheDocumentedShapes() throws {
        let connection = try PostgresConnection.connect(PostgresConfiguration(url: try TestDatabase.create()))
        try connection.executeScript(
            """
            INSERT INTO regions (id, display_name, kind, is_primary, vpc_id, vswitch_ids, security_group_id, state)
            VALUES ('a', 'A', 'serverless', true, 'vpc', '{vsw}', 'sg', 'active');
            INSERT INTO pools (region_id, id, compute_class, qos, gpu_series, gpu_vendor, gpu_memory_gib, gpus_per_instance,
                               gpu_partitions, gpu_interconnect, cpu, memory_gib, instance_type, capacity, price_per_hour)
            VALUES ('a', 't4', 'gpu', '{default}', 'T4', 'nvidia', 16, 2, '{1g.10gb}', '{nvlink}', 8, 32, 'ecs.gn6i', 4, 1.5);
            UPDATE pools SET capacity = 5;
            """)
        let rows = try connection.query(
            "SELECT type, (data->'current')::text AS current FROM inventory_events WHERE type IN ('region.created', 'pool.changed')")
        var bodies: [String: [String: JSONValue]] = [:]
        for row in rows {
            bodies[try row.decode("type")] = try JSONValue.parse(try row.decode("current", as: String.self)).objectValue
        }
        XCTAssertEqual(Set(try XCTUnwrap(bodies["region.created"]).keys), try properties("InventoryRegionState"))
        let pool = try XCTUnwrap(bodies["pool.changed"])
        XCTAssertEqual(Set(pool.keys), try properties("InventoryPoolState"))
        XCTAssertEqual(pool["gpusPerInstance"]?.numberValue, 2, "the API's name for GPUs per instance")
        XCTAssertEqual(pool["gpuVendor"], .string("nvidia"), "the accelerator fields, as GET /v1/inventory shows them")
        XCTAssertEqual(pool["gpuPartitions"], .array([.string("1g.10gb")]))
        XCTAssertEqual(pool["gpuInterconnect"], .array([.string("nvlink")]))
    }
}
