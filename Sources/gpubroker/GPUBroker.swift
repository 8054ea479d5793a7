import ArgumentParser
import Foundation
import Logging
import PostgresClient

@main
struct GPUBroker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpubroker",
        abstract: "Brokers serverless GPU and CPU capacity across cloud regions over a REST/JSON API.",
        discussion: """
            Without a command, gpubroker serves. Every server option can also be set in the \
            environment as GPUBROKER_<OPTION> (for example GPUBROKER_DATABASE_URL, GPUBROKER_LISTEN, \
            GPUBROKER_ADMIN_TOKEN); a command-line option wins over the environment.

            The client commands talk to a broker over HTTP(S): --server and --token, else \
            GPUBROKER_URL and GPUBROKER_TOKEN, else ~/.config/gpubroker/config (mode 0600, written \
            by 'gpubroker login'). Exit codes: 0 done, 1 error, 2 usage, 3 insufficient capacity, \
            4 timed out waiting. Shell completion: gpubroker --generate-completion-script bash|zsh|fish.
            """,
        version: Release.version,
        groupedSubcommands: [
            CommandGroup(name: "Server", subcommands: [Serve.self, Migrate.self, Verify.self]),
            CommandGroup(name: "Client", subcommands: [
                Regions.self, Inventory.self, Allocate.self, Allocations.self, Allocations.Queue.self, Shares.self, Apply.self,
                Policies.self, Tokens.self, Webhooks.self, Events.self, Usage.self, Admin.self, Login.self, Logout.self,
                WhoAmI.self, Config.self, Version.self,
            ]),
        ],
        defaultSubcommand: Serve.self
    )

    /// ArgumentParser's own `main`, except that a usage error exits 2 (as the client
    /// commands document) instead of EX_USAGE (64).
    static func main() async {
        if let unknown = CommandNames.unknown(Array(CommandLine.arguments.dropFirst())) {
            Terminal.write(unknown + "\n", to: .standardError)
            Foundation.exit(ClientExit.usage.rawValue)
        }
        do {
            var command = try await asyncParseAsRoot(nil)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            guard exitCode(for: error) == .validationFailure else { exit(withError: error) }
            Terminal.write(fullMessage(for: error) + "\n", to: .standardError)
            Foundation.exit(ClientExit.usage.rawValue)
        }
    }
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

    @Option(help: ArgumentHelp(
        "Directory for the embedded PostgreSQL (used when no database URL is given) and the generated tokens. Env: GPUBROKER_DATA_DIR. Default ./.gpubroker.",
        valueName: "dir"))
    var dataDir: String?

    var resolvedURL: String? { setting(databaseURL, "GPUBROKER_DATABASE_URL") }
    var dataDirectory: String { setting(dataDir, "GPUBROKER_DATA_DIR") ?? ".gpubroker" }

    /// The database of a one-shot command: the URL given, else the embedded cluster of
    /// the data directory (the one `serve` keeps there), started for the command when no
    /// broker runs it. `body` runs while the cluster is up.
    func withDatabase<T>(for command: String, _ body: (PostgresConfiguration) async throws -> T) async throws -> T {
        if let url = resolvedURL { return try await body(PostgresConfiguration(url: url)) }
        guard FileManager.default.fileExists(atPath: dataDirectory + "/pgdata/PG_VERSION") else {
            throw ValidationError(
                "\(command): no database: pass --database-url (or GPUBROKER_DATABASE_URL), or run it where `gpubroker serve` keeps its embedded database (--data-dir, now \(dataDirectory))")
        }
        let cluster = try EmbeddedPostgres(directory: dataDirectory, logger: Logger(label: "gpubroker"))
        let started = try cluster.start()
        defer { if started { cluster.stop() } }
        return try await body(PostgresConfiguration(parameters: cluster.connectionParameters))
    }
}
