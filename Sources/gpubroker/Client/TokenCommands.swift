import ArgumentParser
import BrokerClient
import BrokerCore
import Foundation
import JSON

struct Tokens: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A tenant's named tokens, each with a role or scopes and an optional expiry (tenant-admin).",
        subcommands: [List.self, Create.self, Revoke.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The tenant's tokens, without secrets.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.show(Tables.tokens) { client in try await client.tokens() }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a token; its secret is shown once.")
        @Argument(help: "The token's name, e.g. ci-deploy.") var name: String
        @Option(help: ArgumentHelp(
            "\(Role.allCases.filter { $0 != .admin }.map(\.rawValue).joined(separator: ", ")) (default member).",
            valueName: "role")) var role: String?
        @Option(help: ArgumentHelp(
            "Narrow it to scopes (comma-separated or repeated): \(TokenScope.allCases.map(\.rawValue).joined(separator: ", ")).",
            valueName: "scopes")) var scope: [String] = []
        @Option(help: ArgumentHelp("Seconds until it expires (default: never).", valueName: "seconds")) var expiresIn: Int?
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var body: [String: JSONValue] = ["name": .string(name)]
            if let role { body["role"] = .string(role) }
            if !scope.isEmpty { body["scopes"] = .array(commaList(scope).map(JSONValue.string)) }
            if let expiresIn { body["expiresInSeconds"] = .number(Double(expiresIn)) }
            try await options.show(Tables.token) { client in try await client.createToken(.object(body)) }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token: it stops working at once.")
        @Argument(help: "The token id.") var id: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.run { client, _ in
                try await client.revokeToken(id)
                Terminal.write("token \(id) revoked\n", to: .standardError)
            }
        }
    }
}
