import BrokerStore

/// `gpubroker verify`'s check, run against a test broker's database.
public enum LedgerCheck {
    public static func run(_ broker: TestBroker) async throws -> [String] {
        try await LedgerVerifier(pool: broker.pool).verify().problems
    }
}
