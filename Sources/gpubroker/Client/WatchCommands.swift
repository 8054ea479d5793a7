import ArgumentParser
import BrokerClient
import BrokerCore
import Foundation
import JSON

/// `--watch`: a read repeated every `interval`, printed again whenever its answer changes
/// (a table again on a terminal; one compact JSON document per line otherwise, for `jq`),
/// until `done` holds of an answer or the user interrupts.
enum Watch {
    static let interval = Duration.seconds(2)

    static func run(
        _ read: () async throws -> JSONValue, printer: Printer, table: (JSONValue) -> String, until done: (JSONValue) -> Bool = { _ in false }
    ) async throws {
        var last: [UInt8]? = nil
        while true {
            let answer = try await read()
            let encoded = answer.encoded()
            if encoded != last {
                last = encoded
                switch printer.format {
                case .table: Terminal.write(table(answer) + "\n", to: .standardOutput)
                case .json: Terminal.write(String(decoding: encoded, as: UTF8.self) + "\n", to: .standardOutput)
                case .yaml: try printer.print(answer) { _ in "" }
                }
            }
            if done(answer) { return }
            try await Task.sleep(for: interval)
        }
    }
}

/// `-l key=value`: only allocations whose labels hold every pair (the API does not filter by label).
func matchingLabels(_ page: JSONValue, _ selector: [String: String]) -> JSONValue {
    guard !selector.isEmpty, var object = page.objectValue else { return page }
    object["allocations"] = .array((page["allocations"]?.arrayValue ?? []).filter { allocation in
        selector.allSatisfy { allocation["labels"]?[$0.key]?.stringValue == $0.value }
    })
    return .object(object)
}

struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The ledger feed: the tenant's allocation events (the admin's: everyone's and the inventory's).",
        discussion: """
            GET /v1/events, page after page from --after (the start of the feed without it). With \
            --follow it keeps asking for what comes next every 2 seconds until interrupted; each \
            event is printed once, in feed order (JSON: one event per line).
            """)

    @Option(help: ArgumentHelp("Start after this position (an event id or a nextAfter).", valueName: "position"))
    var after: String?

    @Flag(name: [.customShort("f"), .long], help: "Keep printing new events as they come.")
    var follow = false

    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await options.run { client, printer in
            var position = after
            var header = true
            while true {
                let page = try await client.eventPage(after: position)
                let events = page["events"]?.arrayValue ?? []
                if !events.isEmpty || (header && !follow) {
                    switch printer.format {
                    case .table: Terminal.write(Tables.feed(page, colour: printer.colour, header: header), to: .standardOutput)
                    case .json, .yaml:
                        for event in events { Terminal.write(String(decoding: event.encoded(), as: UTF8.self) + "\n", to: .standardOutput) }
                    }
                    header = false
                }
                position = page["nextAfter"]?.stringValue ?? position
                if events.count < BrokerClient.eventPageSize {
                    guard follow else { return }
                    try await Task.sleep(for: Watch.interval)
                }
            }
        }
    }
}

struct Usage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Instance-hours, GPU-hours and spend, from the ledger (GET /v1/usage; everyone's with --all-tenants).")

    @Option(help: ArgumentHelp("From this date or time (default: the start of the month, UTC).", valueName: "date"))
    var from: String?

    @Option(help: ArgumentHelp("Up to this date or time (default: now).", valueName: "date"))
    var to: String?

    @Option(help: ArgumentHelp("Row keys, comma-separated: \(UsageGrouping.helpList).", valueName: "keys"))
    var groupBy: [String] = []

    @Flag(help: "With the admin token: every tenant's (GET /v1/admin/usage).")
    var allTenants = false

    @Option(help: ArgumentHelp("With --all-tenants: only this tenant's.", valueName: "tenant-id"))
    var tenant: String?

    @OptionGroup var options: ClientOptions

    func validate() throws {
        if tenant != nil && !allTenants { throw ValidationError("--tenant goes with --all-tenants") }
    }

    func run() async throws {
        try await options.show(Tables.usage) { client in
            try await client.usage(from: from, to: to, groupBy: commaList(groupBy), admin: allTenants, tenant: tenant)
        }
    }
}
