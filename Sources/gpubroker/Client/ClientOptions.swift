import ArgumentParser
import BrokerClient
import BrokerCore
import Foundation
import JSON

/// What every client command takes: where the broker is, the token, the output format.
struct ClientOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Broker URL. Env: GPUBROKER_URL; else 'server =' in ~/.config/gpubroker/config; default http://127.0.0.1:8080.",
        valueName: "url"))
    var server: String?

    @Option(help: ArgumentHelp(
        "Bearer token (tenant or admin). Env: GPUBROKER_TOKEN; else 'token =' in ~/.config/gpubroker/config (mode 0600).",
        valueName: "token"))
    var token: String?

    @Option(name: .shortAndLong, help: ArgumentHelp(
        "table, json or yaml. Default: table on a terminal, json otherwise.", valueName: "format"))
    var output: OutputFormat?

    var printer: Printer {
        Printer(format: output ?? (Terminal.stdoutIsTTY ? .table : .json), colour: Terminal.colour(onTTY: Terminal.stdoutIsTTY))
    }

    /// Runs a client command with the configured client; see `reportingFailures`.
    func run(_ body: (BrokerClient, Printer) async throws -> Void) async throws {
        try await reportingFailures {
            let (url, token) = try ClientConfiguration.resolve(server: server, token: token)
            guard let token else {
                throw ClientError.configuration(
                    "no token: pass --token, set GPUBROKER_TOKEN, or run 'gpubroker login --token TOKEN'")
            }
            try await body(BrokerClient(server: url, token: token), printer)
        }
    }
}

extension ClientOptions {
    /// Runs one call and prints its answer; `table` renders the table form.
    func show(_ table: @escaping (JSONValue, Bool) -> String, _ call: (BrokerClient) async throws -> JSONValue) async throws {
        try await run { client, printer in
            try printer.print(try await call(client)) { table($0, printer.colour) }
        }
    }
}

extension ClientOptions {
    /// Runs one removal and says on stderr what went ("region r1 deleted").
    func delete(_ what: String, _ call: (BrokerClient) async throws -> Void) async throws {
        try await run { client, _ in
            try await call(client)
            Terminal.write("\(what) deleted\n", to: .standardError)
        }
    }
}

/// Runs `body`; an error answer or a client failure becomes one line on stderr and exit 1,
/// or exit 3 when the broker refused for lack of capacity.
func reportingFailures(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let problem as APIProblem {
        Terminal.error(problem.description)
        throw problem.code == ProblemCode.insufficientCapacity.rawValue ? ClientExit.insufficientCapacity : ClientExit.failure
    } catch let error as ClientError {
        Terminal.error(error.description)
        throw ClientExit.failure
    }
}

/// The client's exit codes (2, a usage error, is ArgumentParser's validation failure).
enum ClientExit {
    static let failure = ExitCode(1)
    static let usage = ExitCode(2)
    static let insufficientCapacity = ExitCode(3)
    static let timedOut = ExitCode(4)
}

/// `key=value` arguments (labels, selectors) as a dictionary.
func keyValues(_ items: [String], option: String) throws -> [String: String] {
    var result: [String: String] = [:]
    for item in items {
        let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty else {
            throw ValidationError("\(option) takes key=value (got '\(item)')")
        }
        result[parts[0]] = parts[1]
    }
    return result
}

/// Comma-separated lists, also given as repeated options: `--series T4,A10 --series L20`.
func commaList(_ items: [String]) -> [String] {
    items.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
}

/// Shell completion of a region option: the ids of the broker the client is configured for
/// (flags aside: the environment, then the config file); none when it cannot be asked.
enum RegionCompletion {
    static let kind = CompletionKind.custom { (_: [String], _: Int, _: String) async -> [String] in
        guard let (server, token) = try? ClientConfiguration.resolve(server: nil, token: nil), let token,
            let regions = try? await BrokerClient(server: server, token: token).regions()
        else { return [] }
        return (regions["regions"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
    }
}
