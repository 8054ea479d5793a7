import ArgumentParser
import BrokerClient
import BrokerCore
import Foundation
import JSON

struct Regions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the regions, or show one.",
        discussion: "GET /v1/regions, or GET /v1/regions/{id} with an id.")

    @Argument(help: "A region id: show only this region.")
    var id: String?

    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await options.run { client, printer in
            if let id {
                try printer.print(try await client.region(id)) { Tables.region($0, colour: printer.colour) }
            } else {
                try printer.print(try await client.regions()) { Tables.regions($0, colour: printer.colour) }
            }
        }
    }
}

struct Inventory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What a replica shape can get now per region, or the pools with what is in use.",
        discussion: """
            With --class: how many replicas of that shape fit now in each region, in default \
            placement order, with the cheapest pool that can give one (GET /v1/inventory). \
            Without it: every pool of --region, or of every region, with capacity, used, idle and \
            free instances and price (GET /v1/regions/{id}/inventory).
            """)

    @OptionGroup(title: "Replica shape") var shape: ShapeOptions

    @Option(help: ArgumentHelp("Without --class: only this region's pools.", valueName: "region"), completion: RegionCompletion.kind)
    var region: String?

    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard !shape.isEmpty else { return }
        _ = try shape.query()
        guard region == nil else { throw ValidationError("--region lists one region's pools: leave out the shape") }
    }

    func run() async throws {
        try await options.run { client, printer in
            if !shape.isEmpty {
                try printer.print(try await client.inventory(try shape.query())) { Tables.shapeAvailability($0, colour: printer.colour) }
            } else {
                try printer.print(try await Self.pools(client, region: region)) { Tables.pools($0, colour: printer.colour) }
            }
        }
    }

    /// One region's inventory as the API answers it, or every region's as `{"regions": [...]}`.
    static func pools(_ client: BrokerClient, region: String?) async throws -> JSONValue {
        if let region { return try await client.regionInventory(region) }
        var inventories: [JSONValue] = []
        for region in try await client.regions()["regions"]?.arrayValue ?? [] {
            guard let id = region["id"]?.stringValue else { continue }
            inventories.append(try await client.regionInventory(id))
        }
        return .object(["regions": .array(inventories)])
    }
}

/// A replica shape, as `inventory` and `allocate` take it.
struct ShapeOptions: ParsableArguments {
    @Option(name: .customLong("class"), help: ArgumentHelp("\(ComputeClass.helpList).", valueName: "class"),
            completion: .list(ComputeClass.allCases.map(\.rawValue)))
    var computeClass: String?

    @Option(help: ArgumentHelp("Acceptable GPU series, most preferred first (T4,A10).", valueName: "series"),
            completion: .list(AcceleratorModels.all.map(\.name)))
    var series: [String] = []

    // Numbers parse `unconditional`ly: '--cpu -4' then says what is wrong with -4, instead
    // of "Missing value" for an option-looking argument.
    @Option(parsing: .unconditional, help: ArgumentHelp("GPUs per replica (gpu class; default 1).", valueName: "n"))
    var gpus: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("CPU cores per replica.", valueName: "cores"))
    var cpu: Double?

    @Option(parsing: .unconditional, help: ArgumentHelp("Memory per replica in GiB.", valueName: "GiB"))
    var memory: Double?

    @Option(help: ArgumentHelp("\(QoS.helpList) (preemptible).", valueName: "qos"), completion: .list(QoS.allCases.map(\.rawValue)))
    var qos: String?

    var isEmpty: Bool { computeClass == nil && series.isEmpty && gpus == nil && cpu == nil && memory == nil && qos == nil }

    /// The shape; a usage error unless --class, --cpu and --memory are given.
    func query() throws -> ShapeQuery {
        guard let computeClass, let cpu, let memory else {
            throw ValidationError("a replica shape needs --class, --cpu and --memory")
        }
        for (name, value) in [("--cpu", cpu), ("--memory", memory)] where !(value > 0) {
            throw ValidationError("\(name) must be a positive number (got \(JSONValue.number(value).cellText))")
        }
        if let gpus, gpus < 1 { throw ValidationError("--gpus must be a whole number, 1 or more (got \(gpus))") }
        return ShapeQuery(computeClass: computeClass, gpuSeries: commaList(series), gpuCount: gpus, cpu: cpu, memoryGiB: memory, qos: qos)
    }
}
