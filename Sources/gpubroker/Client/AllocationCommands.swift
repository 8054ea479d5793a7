import ArgumentParser
import BrokerClient
import BrokerCore
import Foundation
import JSON

struct Allocate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Request capacity: replicas of a shape, placed across regions.",
        discussion: """
            POST /v1/allocations of --replicas of a shape (--class, --cpu and --memory \
            required). Without --region or --policy the broker uses the tenant's \
            policy whose selector matches the --label values, else the default placement \
            (primary region first, then the others by price and free capacity). \
            With --queue a request that cannot be met now waits as pending; --wait then \
            shows its progress and returns once it is active (exit 0) or unschedulable \
            (exit 3), or after --timeout (exit 4). --dry-run says what would happen \
            and changes nothing.
            """)

    @OptionGroup(title: "Replica shape") var shape: ShapeOptions

    @Option(help: ArgumentHelp("Replicas wanted.", valueName: "n"))
    var replicas = 1

    @Option(help: ArgumentHelp("Pin to this region, without fallback.", valueName: "region"), completion: RegionCompletion.kind)
    var region: String?

    @Option(help: ArgumentHelp("Place with this named policy of the tenant (GET /v1/policies/{name}).", valueName: "name"))
    var policy: String?

    @Option(help: ArgumentHelp("Only pools of this instance type.", valueName: "type"))
    var instanceType: String?

    @Option(name: .customLong("label"), help: ArgumentHelp("A request label, key=value (repeatable).", valueName: "key=value"))
    var labels: [String] = []

    @Option(help: ArgumentHelp("Lease length in seconds (default 300).", valueName: "seconds"))
    var lease: Int?

    @Flag(help: "Take as many replicas as fit (status partial) instead of all or nothing.")
    var partial = false

    @Flag(help: "When nothing fits now, wait as pending instead of failing with exit 3.")
    var queue = false

    @Option(help: ArgumentHelp("How long a queued request may stay pending (seconds, default 3600).", valueName: "seconds"))
    var queueTimeout: Int?

    @Flag(help: "Wait until the allocation is active or has failed, showing progress on a terminal.")
    var wait = false

    @Option(help: ArgumentHelp("With --wait: give up after this many seconds (exit 4). Default 600.", valueName: "seconds"))
    var timeout: Double = 600

    @OptionGroup var dryRun: DryRunOption
    @OptionGroup var options: ClientOptions

    func validate() throws {
        _ = try shape.query()
        if dryRun.dryRun && wait { throw ValidationError("--dry-run and --wait exclude each other") }
        if region != nil && policy != nil { throw ValidationError("--region and --policy exclude each other") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() async throws {
        try await options.run { client, printer in
            let query = try shape.query()
            var spec = AllocationSpec(computeClass: query.computeClass, cpu: query.cpu, memoryGiB: query.memoryGiB, replicas: replicas)
            spec.gpuSeries = query.gpuSeries
            spec.gpuCount = query.gpuCount
            spec.qos = query.qos
            spec.region = region
            spec.instanceType = instanceType
            spec.labels = try keyValues(labels, option: "--label")
            spec.leaseSeconds = lease
            spec.allOrNothing = partial ? false : nil
            spec.queue = queue ? true : nil
            spec.queueTimeoutSeconds = queueTimeout
            if let policy {
                // A named policy is the placement the broker would resolve from labels; sent as `placement`.
                spec.placement = try await client.policy(policy)["policy"]
            }
            if dryRun.dryRun {
                return try DryRunOption.show(try await client.createAllocation(spec, dryRun: true), printer: printer)
            }
            let allocation = try await client.createAllocation(spec)
            if let never = Unsatisfiable.reason(in: Self.decisions(allocation)) {
                Terminal.write("warning: queued, but \(never)\n", to: .standardError)
            }
            try await AllocationWaiter.show(allocation, waiting: wait, timeout: timeout, client: client, printer: printer)
        }
    }

    static func decisions(_ allocation: JSONValue) -> [PlacementDecision] {
        (allocation["decisions"]?.arrayValue ?? []).map {
            PlacementDecision(region: $0.text("region"), replicas: Int($0["replicas"]?.numberValue ?? 0), reason: $0.text("reason"))
        }
    }
}

/// `--any-tenant` (admin token): act on any tenant's allocation through `/v1/admin/allocations`.
struct AllocationScopeOptions: ParsableArguments {
    @Flag(help: "With the admin token: any tenant's allocation (the ledger records the admin as the actor).")
    var anyTenant = false

    @Option(help: ArgumentHelp("With --any-tenant on list: only this tenant's.", valueName: "tenant-id"))
    var tenant: String?

    var scope: BrokerClient.AllocationScope { anyTenant ? .admin(tenant: tenant) : .tenant }

    func validate() throws {
        if tenant != nil && !anyTenant { throw ValidationError("--tenant goes with --any-tenant") }
    }
}

struct Allocations: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The tenant's allocations (any tenant's with --any-tenant and the admin token): list, get, scale, renew, release, events, queue.",
        subcommands: [List.self, Get.self, Scale.self, Renew.self, Release.self, Events.self, Queue.self])

    /// An allocation as a table, with its place in the queue while it is pending.
    static func show(_ allocation: JSONValue, client: BrokerClient, printer: Printer) async throws {
        try printer.print(allocation) { Tables.allocation($0, colour: printer.colour) }
        guard printer.format == .table, allocation["status"]?.stringValue == "pending",
            let id = allocation["id"]?.stringValue, let position = try? await client.queuePosition(id)
        else { return }
        Terminal.write("\nQueue\n" + Tables.queue(position, colour: printer.colour), to: .standardOutput)
    }

    struct Queue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Where a pending allocation stands: position, replicas ahead, the pools it waits for, an estimate.")

        @Argument(help: "The allocation id, or a unique start or end of it (the console shows the last 8 digits).") var id: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.show(Tables.queue) { client in try await client.queuePosition(try await client.resolveAllocationId(id)) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List allocations, oldest first (every page unless --limit).")

        @Option(help: ArgumentHelp("Only this status (\(AllocationStatus.helpList)).", valueName: "status"),
                completion: .list(AllocationStatus.allCases.map(\.rawValue)))
        var status: String?

        @Option(help: ArgumentHelp("Only allocations with an instance in this region.", valueName: "region"), completion: RegionCompletion.kind)
        var region: String?

        @Option(help: ArgumentHelp("One page of at most this many (1-100); its nextCursor goes to --cursor.", valueName: "n"))
        var limit: Int?

        @Option(help: ArgumentHelp("With --limit: the page after this cursor.", valueName: "cursor"))
        var cursor: String?

        @Option(name: [.customShort("l"), .customLong("selector")], help: ArgumentHelp(
            "Only allocations whose labels hold key=value (repeatable: all must hold).", valueName: "key=value"))
        var selector: [String] = []

        @Flag(name: [.customShort("w"), .long], help: "Print the list again whenever it changes, until interrupted.")
        var watch = false

        @OptionGroup var scope: AllocationScopeOptions
        @OptionGroup var options: ClientOptions

        func validate() throws {
            if cursor != nil && limit == nil { throw ValidationError("--cursor pages with --limit: give both") }
            _ = try keyValues(selector, option: "-l")
        }

        func run() async throws {
            let labels = try keyValues(selector, option: "-l")
            try await options.run { client, printer in
                let read = {
                    let page = if let limit {
                        try await client.allocations(limit: limit, cursor: cursor, status: status, region: region, scope: scope.scope)
                    } else {
                        try await client.allAllocations(status: status, region: region, scope: scope.scope)
                    }
                    return matchingLabels(page, labels)
                }
                let table = { Tables.allocations($0, colour: printer.colour) }
                if watch { return try await Watch.run(read, printer: printer, table: table) }
                try printer.print(try await read(), table: table)
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an allocation: instances and placement decisions.")

        @Argument(help: "The allocation id, or a unique start or end of it (the console shows the last 8 digits).") var id: String
        @Flag(help: "Wait while it is pending, as 'allocate --wait' does.") var wait = false
        @Option(help: ArgumentHelp("With --wait: give up after this many seconds (exit 4).", valueName: "seconds"))
        var timeout: Double = 600
        @Flag(name: [.customShort("w"), .long], help: "Print it again whenever it changes, until it has ended (released, expired, unschedulable).")
        var watch = false
        @OptionGroup var scope: AllocationScopeOptions
        @OptionGroup var options: ClientOptions

        func validate() throws {
            if wait && watch { throw ValidationError("--wait and --watch exclude each other") }
        }

        func run() async throws {
            try await options.run { client, printer in
                if watch {
                    let resolved = try await client.resolveAllocationId(id, scope: scope.scope)
                    return try await Watch.run(
                        { try await client.allocation(resolved, scope: scope.scope) }, printer: printer,
                        table: { Tables.allocation($0, colour: printer.colour) },
                        until: { AllocationStatus(rawValue: $0.text("status"))?.hasEnded ?? true })
                }
                try await AllocationWaiter.show(
                    try await client.allocation(try await client.resolveAllocationId(id, scope: scope.scope), scope: scope.scope), waiting: wait, timeout: timeout, client: client, printer: printer)
            }
        }
    }

    struct Scale: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set the replica count: scale out, or in (last placement unit first, newest first).")

        @Argument(help: "The allocation id, or a unique start or end of it (the console shows the last 8 digits).") var id: String
        @Option(help: ArgumentHelp("Replicas wanted.", valueName: "n")) var replicas: Int
        @OptionGroup var scope: AllocationScopeOptions
        @OptionGroup var dryRun: DryRunOption
        @OptionGroup var options: ClientOptions

        func run() async throws {
            if dryRun.dryRun {
                return try await options.run { client, printer in
                    try DryRunOption.show(
                        try await client.scale(try await client.resolveAllocationId(id, scope: scope.scope), replicas: replicas, scope: scope.scope, dryRun: true), printer: printer)
                }
            }
            try await options.show(Tables.allocation) { client in try await client.scale(try await client.resolveAllocationId(id, scope: scope.scope), replicas: replicas, scope: scope.scope) }
        }
    }

    struct Renew: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Extend the lease from now.")

        @Argument(help: "The allocation id, or a unique start or end of it (the console shows the last 8 digits).") var id: String
        @Option(help: ArgumentHelp("New lease length in seconds (default: the current one).", valueName: "seconds"))
        var lease: Int?
        @OptionGroup var scope: AllocationScopeOptions
        @OptionGroup var dryRun: DryRunOption
        @OptionGroup var options: ClientOptions

        func run() async throws {
            if dryRun.dryRun {
                return try await options.run { client, printer in
                    try DryRunOption.show(
                        try await client.renew(try await client.resolveAllocationId(id, scope: scope.scope), leaseSeconds: lease, scope: scope.scope, dryRun: true), printer: printer)
                }
            }
            try await options.show(Tables.allocation) { client in try await client.renew(try await client.resolveAllocationId(id, scope: scope.scope), leaseSeconds: lease, scope: scope.scope) }
        }
    }

    struct Release: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Release every instance (or withdraw a pending request).")

        @Argument(help: "The allocation id, or a unique start or end of it (the console shows the last 8 digits).") var id: String
        @OptionGroup var scope: AllocationScopeOptions
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.show(Tables.allocation) { client in try await client.release(try await client.resolveAllocationId(id, scope: scope.scope), scope: scope.scope) }
        }
    }

    struct Events: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The allocation's ledger rows, in sequence order.")

        @Argument(help: "The allocation id, or a unique start or end of it (the console shows the last 8 digits).") var id: String
        @OptionGroup var scope: AllocationScopeOptions
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.show(Tables.events) { client in try await client.events(try await client.resolveAllocationId(id, scope: scope.scope), scope: scope.scope) }
        }
    }
}
