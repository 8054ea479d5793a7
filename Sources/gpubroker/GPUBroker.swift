import ArgumentParser
import Foundation
import PostgresClient

@main
struct GPUBroker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpubroker",
        abstract: "Brokers serverless GPU and CPU capacity across cloud regions over a REST/JSON API.",
        discussion: """
            Every option can also be set in the environment as GPUBROKER_<OPTION> \
            (for example GPUBROKER_DATABASE_URL, GPUBROKER_LISTEN, GPUBROKER_ADMIN_TOKEN); \
            a command-line option wins over the environment.
            """,
        subcommands: [Serve.self, Migrate.self, Verify.self],
        defaultSubcommand: Serve.self
    )
}

/// `--option`, else `GPUBROKER_<NAME>`, else the default.
func setting(_ option: String?, _ environmentName: String) -> String? {
    if let option { return option }
    if let value = ProcessInfo.processInfo.environment[environmentName], !value.isEmpty { return value }
    return nil
}

struct DatabaseOptions: ParsableArguments {
    @Option(
        name: .customLong("database-url"),
        help: ArgumentHelp(
            "PostgreSQL URL (libpq syntax; multi-host with target_session_attrs=read-write for failover). Env: GPUBROKER_DATABASE_URL.",
            valueName: "url"))
    var databaseURL: String?

    var resolvedURL: String? { setting(databaseURL, "GPUBROKER_DATABASE_URL") }

    /// A connection for a one-shot command, which needs an explicit database.
    func connect(for command: String) throws -> PostgresConnection {
        guard let url = resolvedURL else {
            throw ValidationError("\(command) needs --database-url (or GPUBROKER_DATABASE_URL)")
        }
        return try PostgresConnection.connect(PostgresConfiguration(url: url))
    }
}
