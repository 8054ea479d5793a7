import ArgumentParser
import BrokerClient
import BrokerCore
import Foundation
import JSON

/// `gpubroker shares`: where the tenant stands against its fair share.
struct Shares: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Where the tenant stands against its fair share, and why its next request would or would not be admitted now.")
    @Flag(help: "Every tenant (admin token).") var all = false
    @OptionGroup var options: ClientOptions

    func run() async throws {
        if all {
            try await options.show(ShareTables.reports) { client in try await client.shares(all: true) }
        } else {
            try await options.show(ShareTables.report) { client in try await client.shares() }
        }
    }
}

/// `gpubroker admin tenants share ID`: show a tenant's share, or change it with a merge patch.
struct TenantShareCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "share",
        abstract: "Show a tenant's fair share, or change it: the values not given keep theirs (PATCH .../share).")
    @Argument(help: "The tenant id.") var id: String
    @Option(help: ArgumentHelp("Put the tenant in this cohort.", valueName: "name")) var cohort: String?
    @Flag(help: "Take the tenant out of its cohort.") var noCohort = false
    @Option(help: ArgumentHelp("The resource the next options set: gpus, gpu:<model>, cpu or memoryGiB.", valueName: "resource"))
    var resource: String?
    @Option(help: ArgumentHelp("Guaranteed amount (GPUs, vCPUs or GiB).", valueName: "n")) var guaranteed: Double?
    @Option(help: ArgumentHelp("Weight for what is held above guarantees (default 1).", valueName: "w")) var weight: Double?
    @Option(help: ArgumentHelp("Most it may hold above its guarantee; 'none' for no limit.", valueName: "n")) var borrowingLimit: String?
    @Option(help: ArgumentHelp("Most of its unused guarantee it lends; 'none' for no limit.", valueName: "n")) var lendingLimit: String?
    @OptionGroup var options: ClientOptions

    var fields: [String: JSONValue] {
        var fields: [String: JSONValue] = [:]
        if let guaranteed { fields["guaranteed"] = .number(guaranteed) }
        if let weight { fields["weight"] = .number(weight) }
        for (key, value) in [("borrowingLimit", borrowingLimit), ("lendingLimit", lendingLimit)] {
            guard let value else { continue }
            fields[key] = value == "none" ? .null : Double(value).map(JSONValue.number) ?? .string(value)
        }
        return fields
    }

    func validate() throws {
        if cohort != nil && noCohort { throw ValidationError("--cohort and --no-cohort exclude each other") }
        if resource == nil && !fields.isEmpty { throw ValidationError("--resource names what the share options set") }
    }

    func run() async throws {
        var body: [String: JSONValue] = [:]
        if let cohort { body["cohort"] = .string(cohort) }
        if noCohort { body["cohort"] = .null }
        if let resource { body["resources"] = .object([resource: .object(fields)]) }
        let patch = body
        try await options.show(ShareTables.share) { client in
            if patch.isEmpty { return try await client.tenantShare(id) }
            return try await client.patchTenantShare(id, .object(patch))
        }
    }
}

enum ShareTables {
    typealias Cell = Table.Cell

    static func share(_ share: JSONValue, colour: Bool) -> String {
        var table = Table("RESOURCE", "GUARANTEED", "WEIGHT", "BORROWING LIMIT", "LENDING LIMIT")
        for (key, value) in (share["resources"]?.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
            table.add(
                Cell(key), Cell(value.text("guaranteed")), Cell(value.text("weight")), Cell(limit(value["borrowingLimit"])),
                Cell(limit(value["lendingLimit"])))
        }
        return "Cohort: \(share["cohort"]?.stringValue ?? "none")\n" + table.render(colour: colour)
    }

    static func report(_ report: JSONValue, colour: Bool) -> String {
        var table = Table("RESOURCE", "GUARANTEED", "WEIGHT", "HELD", "BORROWED", "LENT", "POOLS HOLD")
        for line in report["resources"]?.arrayValue ?? [] {
            table.add(
                Cell(line.text("resource")), Cell(line.text("guaranteed")), Cell(line.text("weight")), Cell(line.text("held")),
                Cell(line.text("borrowed")), Cell(line.text("lent")), Cell(line.text("poolsHold")))
        }
        var details = Details()
        details.add("Tenant", Cell("\(report.text("tenantName")) (\(report.text("tenantId")))"))
        details.add("Cohort", Cell(report["cohort"]?.stringValue ?? "none"))
        details.add("Dominant share", Cell(report.text("dominantShare")))
        details.add("Pending", Cell("\(report.text("pendingAllocations")) allocations, \(report.text("pendingReplicas")) replicas"))
        details.add("Next request", Cell(report.text("nextRequest")))
        return details.render(colour: colour) + "\n" + table.render(colour: colour)
    }

    static func reports(_ document: JSONValue, colour: Bool) -> String {
        var table = Table("TENANT", "NAME", "COHORT", "DOMINANT SHARE", "BORROWED", "PENDING")
        for report in document["shares"]?.arrayValue ?? [] {
            let borrowed = (report["resources"]?.arrayValue ?? [])
                .filter { ($0["borrowed"]?.numberValue ?? 0) > 0 }
                .map { "\($0.text("resource"))=\($0.text("borrowed"))" }
            table.add(
                Cell(report.text("tenantId")), Cell(report.text("tenantName")), Cell(report["cohort"]?.stringValue ?? "-"),
                Cell(report.text("dominantShare")), Cell(borrowed.isEmpty ? "-" : borrowed.joined(separator: ",")),
                Cell(report.text("pendingAllocations")))
        }
        return table.render(colour: colour)
    }

    static func limit(_ value: JSONValue?) -> String {
        value?.numberValue.map { JSONValue.number($0).jsonText } ?? "none"
    }
}
