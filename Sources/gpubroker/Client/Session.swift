import ArgumentParser
import BrokerClient
import BrokerCore
import Foundation

/// The release this binary is: the OpenAPI document's `info.version` (`ExecutableTests` keeps them equal).
enum Release {
    static let version = "0.1.0"
}

struct Version: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the client's version (also: gpubroker --version).")

    func run() async throws {
        Terminal.write("gpubroker \(Release.version)\n", to: .standardOutput)
    }
}

struct WhoAmI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "whoami", abstract: "Who the token in force is, on which server (GET /v1/whoami).")
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await options.run { client, printer in
            try printer.print(try await client.whoami()) { identity in
                var details = Details()
                details.add("Server", Cell(client.server.absoluteString))
                details.add("Role", Cell(identity.text("role")))
                if let tenant = identity["tenant"] {
                    details.add("Tenant", Cell("\(tenant.text("name")) (\(tenant.text("id")))"))
                    details.add("Quota", Cell(Tables.quota(tenant)))
                }
                return details.render(colour: printer.colour)
            }
        }
    }
}

struct Logout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Forget the current context's token (the config file keeps its server).")

    func run() async throws {
        let path = ClientConfiguration.defaultPath()
        try await reportingFailures {
            guard var file = try ClientConfigFile.read(path: path), let name = file.current, var saved = file.settings, saved.token != nil else {
                Terminal.write("not logged in (no token in \(path))\n", to: .standardError)
                return
            }
            saved.token = nil
            file.set(name, saved)
            try file.write(path: path)
            Terminal.write("logged out of context \(name): its token removed from \(path)\n", to: .standardError)
        }
    }
}

/// A first argument that is no command, option or help: `gpubroker alocate` would otherwise
/// reach `serve` (the default command) and be reported as one of its usage errors.
enum CommandNames {
    static func unknown(_ arguments: [String]) -> String? {
        guard let first = arguments.first, !first.hasPrefix("-"), first != "help" else { return nil }
        var names: [String] = []
        for command in GPUBroker.configuration.subcommands where !names.contains(command._commandName) {
            names.append(command._commandName)
        }
        guard !names.contains(first) else { return nil }
        let close = names.filter { editDistance($0, first) <= 2 || $0.hasPrefix(first) }
        let hint = close.isEmpty ? "" : "; did you mean \(close.map { "'\($0)'" }.joined(separator: " or "))?"
        return "error: unknown command '\(first)'\(hint) (gpubroker --help lists the commands)"
    }

    /// Levenshtein distance, for the suggestion.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
