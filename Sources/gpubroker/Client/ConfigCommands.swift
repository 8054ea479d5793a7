import ArgumentParser
import BrokerClient
import BrokerCore
import Foundation

/// Contexts of the config file, as kubectl's: one per server and token, one in force.
struct Config: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Contexts (a server and a token each, written by 'login --context'): get-contexts, use-context, current-context, delete-context.",
        subcommands: [GetContexts.self, UseContext.self, CurrentContext.self, DeleteContext.self])

    /// The file, for a command that needs one.
    static func file() throws -> (ClientConfigFile, String) {
        let path = ClientConfiguration.defaultPath()
        guard let file = try ClientConfigFile.read(path: path) else {
            throw ClientError.configuration("no config file at \(path): 'gpubroker login' writes one")
        }
        return (file, path)
    }

    /// Edits the file for a context it has, writes it and says `done` on stderr.
    static func change(_ name: String, done: String, _ edit: @escaping (inout ClientConfigFile) -> Void) async throws {
        try await reportingFailures {
            var (file, path) = try Config.file()
            guard file.context(name) != nil else {
                throw ClientError.configuration(
                    "no context '\(name)' (contexts: \(file.contexts.map(\.name).joined(separator: ", ")))")
            }
            edit(&file)
            try file.write(path: path)
            Terminal.write(done + "\n", to: .standardError)
        }
    }

    struct GetContexts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "get-contexts", abstract: "List the contexts; * marks the current one.")

        func run() async throws {
            try await reportingFailures {
                let (file, _) = try Config.file()
                var table = Table("CURRENT", "NAME", "SERVER", "TOKEN")
                for (name, settings) in file.contexts {
                    table.add(
                        Cell(name == file.current ? "*" : ""), Cell(name), Cell(settings.server ?? ClientConfiguration.defaultServer),
                        Cell(settings.token == nil ? "none" : "saved"))
                }
                Terminal.write(table.render(colour: Terminal.colour(onTTY: Terminal.stdoutIsTTY)), to: .standardOutput)
            }
        }
    }

    struct UseContext: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "use-context", abstract: "Make a context the current one.")
        @Argument(help: "The context's name.") var name: String

        func run() async throws {
            try await Config.change(name, done: "switched to context \(name)") { $0.current = name }
        }
    }

    struct CurrentContext: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "current-context", abstract: "Print the current context's name.")

        func run() async throws {
            try await reportingFailures {
                guard let current = try Config.file().0.current else { throw ClientError.configuration("no current context") }
                Terminal.write(current + "\n", to: .standardOutput)
            }
        }
    }

    struct DeleteContext: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delete-context", abstract: "Remove a context and its token.")
        @Argument(help: "The context's name.") var name: String

        func run() async throws {
            try await Config.change(name, done: "deleted context \(name)") { $0.remove(name) }
        }
    }
}
