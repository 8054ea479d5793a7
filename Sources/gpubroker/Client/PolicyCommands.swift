import ArgumentParser
import BrokerAPI
import BrokerClient
import BrokerCore
import Foundation
import JSON

struct Policies: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The tenant's named placement policies: list, get, put, delete.",
        discussion: """
            A request without --region or --policy is placed by the tenant's policy whose selector \
            matches its labels (the most specific wins; an empty selector matches every request), \
            else by the default placement. 'allocate --policy NAME' uses one by name whatever its selector.
            """,
        subcommands: [List.self, Get.self, Put.self, Delete.self],
        defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the policies by name (GET /v1/policies).")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.show(Tables.policies) { client in try await client.policies() }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one policy (GET /v1/policies/{name}).")
        @Argument(help: "The policy's name.") var name: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.show({ Tables.policies(.object(["policies": .array([$0])]), colour: $1) }) { client in
                try await client.policy(name)
            }
        }
    }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or replace a policy from a file (PUT /v1/policies/{name}).",
            discussion: """
                The file (JSON or YAML, - for stdin) holds the broker's policy ({selector, strategy, \
                units, maxPricePerHour}) or a ResourcePolicy, ctyun Policy or PropagationPolicy as \
                written for a cluster. A policy whose selector is empty places every request that names \
                no region or policy: the command says so on stderr.
                """)
        @Argument(help: "The policy's name.") var name: String
        @Option(name: .customShort("f"), help: ArgumentHelp("The policy file, or - for stdin.", valueName: "file"))
        var file: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            let document = try Self.document(try readInput(file))
            try await options.run { client, printer in
                let stored = try await client.putPolicy(name, document)
                for warning in stored["warnings"]?.arrayValue ?? [] {
                    Terminal.write("warning: \(warning.stringValue ?? "")\n", to: .standardError)
                }
                if stored["selector"]?.objectValue?.isEmpty ?? true {
                    Terminal.write(
                        "warning: policy \(name) has an empty selector: it now places every request of this tenant without --region or --policy\n",
                        to: .standardError)
                }
                try printer.print(stored) { Tables.policies(.object(["policies": .array([$0])]), colour: printer.colour) }
            }
        }

        /// The file's one document, JSON or YAML.
        static func document(_ bytes: [UInt8]) throws -> JSONValue {
            guard let documents = try? YAMLBodies.parseStream(bytes).0, documents.count == 1 else {
                throw ValidationError("the policy file must hold one JSON or YAML document")
            }
            return documents[0]
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a policy (DELETE /v1/policies/{name}).")
        @Argument(help: "The policy's name.") var name: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.delete("policy \(name)") { try await $0.deletePolicy(name) }
        }
    }
}

struct Webhooks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Webhook endpoints (the token's own): list, create, delete, deliveries.",
        discussion: """
            Deliveries are signed per Standard Webhooks; scripts/webhook-receiver.py is a receiver \
            that verifies them. A URL on a loopback or private address is refused unless the broker \
            serves with --webhook-allow-private.
            """,
        subcommands: [List.self, Create.self, Delete.self, Deliveries.self],
        defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the endpoints (GET /v1/webhooks).")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.show(Tables.webhooks) { client in try await client.webhooks() }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register an endpoint; its signing secret is printed this once (POST /v1/webhooks).")
        @Option(help: ArgumentHelp("Where deliveries are POSTed.", valueName: "url")) var url: String
        @Option(name: .customLong("event"), help: ArgumentHelp(
            "Event types to deliver, comma-separated or repeated (default: all).", valueName: "type"))
        var events: [String] = []
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.show({ document, colour in
                Tables.webhooks(.object(["webhooks": .array([document])]), colour: colour) + "secret: \(document.text("secret"))\n"
            }) { client in try await client.createWebhook(url: url, eventTypes: commaList(events)) }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an endpoint (DELETE /v1/webhooks/{id}).")
        @Argument(help: "The endpoint's id.") var id: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.delete("webhook \(id)") { try await $0.deleteWebhook(id) }
        }
    }

    struct Deliveries: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "An endpoint's deliveries and their outcome (GET /v1/webhooks/{id}/deliveries).")
        @Argument(help: "The endpoint's id.") var id: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.show(Tables.deliveries) { client in try await client.webhookDeliveries(id) }
        }
    }
}

/// A file's bytes, or stdin's for `-`.
func readInput(_ file: String) throws -> [UInt8] {
    if file == "-" { return Array(FileHandle.standardInput.readDataToEndOfFile()) }
    guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
    return Array(data)
}
