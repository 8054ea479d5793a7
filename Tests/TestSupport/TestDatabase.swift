import BrokerStore
import TestHarness

extension TestDatabase {
    /// A fresh database with gpubroker's schema; returns its URL.
    public static func create() throws -> String {
        try create { _ = try Schema.migrate($0) }
    }
}
