import BrokerStore
import Foundation
import PostgresClient

public struct TestSetupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A fresh, migrated database per test on the cluster `scripts/with-postgres`
/// started, cloned from a template migrated once per test process.
public enum TestDatabase {
    public static var serverURL: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["GPUBROKER_TEST_DATABASE_URL"], !url.isEmpty else {
                throw TestSetupError("GPUBROKER_TEST_DATABASE_URL is not set: run the tests through scripts/test")
            }
            return url
        }
    }

    private static let template = "gpubroker_template_\(ProcessInfo.processInfo.processIdentifier)"
    private static let templateReady: Result<Void, any Error> = Result {
        let admin = try PostgresConnection.connect(PostgresConfiguration(url: try serverURL))
        try admin.executeScript("DROP DATABASE IF EXISTS \(template)")
        try admin.executeScript("CREATE DATABASE \(template)")
        let connection = try PostgresConnection.connect(PostgresConfiguration(url: try url(for: template)))
        _ = try MigrationRunner.migrate(connection, Schema.migrations)
    }

    /// Creates a new database and returns its URL.
    public static func create() throws -> String {
        try templateReady.get()
        let name = "gpubroker_test_\(UUID().uuidString.prefix(8).lowercased())"
        let admin = try PostgresConnection.connect(PostgresConfiguration(url: try serverURL))
        try admin.executeScript("CREATE DATABASE \(name) TEMPLATE \(template)")
        return try url(for: name)
    }

    /// The server URL with another database name.
    public static func url(for database: String) throws -> String {
        var components = URLComponents(string: try serverURL)!
        components.path = "/" + database
        return components.string!
    }
}
