import ArgumentParser
import BrokerClient
import BrokerCore
import Foundation
import JSON

struct Admin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Regions, pools and tenants (admin token).",
        subcommands: [AdminRegions.self, AdminPools.self, AdminTenants.self])
}

/// The settable fields of a region; on `update` the flags given change the region's current values.
struct RegionFields: ParsableArguments {
    @Option(help: ArgumentHelp("A name for people.", valueName: "name")) var displayName: String?
    @Option(help: ArgumentHelp("\(RegionKind.helpList).", valueName: "kind")) var kind: String?
    @Flag(help: "Make it the primary (default) region.") var primary = false
    @Option(help: ArgumentHelp("active, or cordoned (keeps its instances, gets no new grants).", valueName: "state"))
    var state: String?
    @Option(help: ArgumentHelp("VPC id.", valueName: "id")) var vpcId: String?
    @Option(help: ArgumentHelp("vSwitch ids (comma-separated or repeated).", valueName: "ids")) var vswitch: [String] = []
    @Option(help: ArgumentHelp("Security group id.", valueName: "id")) var securityGroup: String?
    @Option(name: .customLong("label"), help: ArgumentHelp("Set a label, key=value (repeatable).", valueName: "key=value"))
    var labels: [String] = []
    @Option(help: ArgumentHelp("Remove a label (repeatable).", valueName: "key")) var removeLabel: [String] = []

    /// `base` (a region as the API answers it, or empty) with these flags applied, as a request body.
    func body(over base: JSONValue) throws -> JSONValue {
        var body: [String: JSONValue] = [:]
        for key in ["displayName", "kind", "primary", "state", "vpcId", "vSwitchIds", "securityGroupId"] {
            if let value = base[key] { body[key] = value }
        }
        if let displayName { body["displayName"] = .string(displayName) }
        if let kind { body["kind"] = .string(kind) }
        if primary { body["primary"] = .bool(true) }
        if let state { body["state"] = .string(state) }
        if let vpcId { body["vpcId"] = .string(vpcId) }
        if !vswitch.isEmpty { body["vSwitchIds"] = .array(commaList(vswitch).map(JSONValue.string)) }
        if let securityGroup { body["securityGroupId"] = .string(securityGroup) }
        var merged = base["labels"]?.objectValue ?? [:]
        for (key, value) in try keyValues(labels, option: "--label") { merged[key] = .string(value) }
        for key in removeLabel { merged[key] = nil }
        body["labels"] = .object(merged)
        return .object(body)
    }
}

struct AdminRegions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "regions", abstract: "Register, change and remove regions.",
        subcommands: [List.self, Create.self, Update.self, Delete.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every region (as 'gpubroker regions').")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.show(Tables.regions) { client in try await client.regions() }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a region (POST /v1/admin/regions).")
        @Argument(help: "The region id, e.g. cn-beijing.") var id: String
        @OptionGroup var fields: RegionFields
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var body = try fields.body(over: .object([:])).objectValue ?? [:]
            body["id"] = .string(id)
            try await options.show(Tables.region) { client in try await client.createRegion(.object(body)) }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a region's fields; the ones not given keep their values (GET, then PUT).")
        @Argument(help: "The region id.") var id: String
        @OptionGroup var fields: RegionFields
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.run { client, printer in
                let body = try fields.body(over: try await client.region(id))
                try printer.print(try await client.replaceRegion(id, body)) { Tables.region($0, colour: printer.colour) }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a region and its pools (refused while it holds instances).")
        @Argument(help: "The region id.") var id: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.delete("region \(id)") { try await $0.deleteRegion(id) }
        }
    }
}

struct AdminPools: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pools", abstract: "Report pools (capacity and price) and remove them.",
        subcommands: [List.self, Put.self, Delete.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pools of a region, or of every region, with what is in use.")
        @Argument(help: "A region id.") var region: String?
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.run { client, printer in
                try printer.print(try await Inventory.pools(client, region: region)) { Tables.pools($0, colour: printer.colour) }
            }
        }
    }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or replace a pool (an inventory report).",
            discussion: "For an existing pool the flags not given keep their reported values, so '--capacity 12' alone reports new capacity.")
        @Argument(help: "The region id.") var region: String
        @Argument(help: "The pool id.") var pool: String
        @Option(name: .customLong("class"), help: ArgumentHelp("\(ComputeClass.helpList).", valueName: "class"))
        var computeClass: String?
        @Option(help: ArgumentHelp("QoS levels served (default,best-effort).", valueName: "levels")) var qos: [String] = []
        @Option(help: ArgumentHelp("Accelerator model, the GPU series (gpu class).", valueName: "model")) var series: String?
        @Option(help: ArgumentHelp(
            "Accelerator vendor: nvidia, amd, intel, aws, google, huawei or other (gpu class; default: inferred from a known model).",
            valueName: "vendor")) var vendor: String?
        @Option(help: ArgumentHelp("Memory of one GPU in GiB (gpu class).", valueName: "GiB")) var gpuMemory: Double?
        @Option(help: ArgumentHelp("GPUs per instance (gpu class).", valueName: "n")) var gpus: Int?
        @Option(help: ArgumentHelp("Partition profiles of a device, such as MIG's 1g.10gb,3g.40gb (gpu class).", valueName: "profiles"))
        var partitions: [String] = []
        @Option(help: ArgumentHelp("How the devices are linked: nvlink, efa, infiniband... (gpu class).", valueName: "links"))
        var interconnect: [String] = []
        @Option(help: ArgumentHelp("CPU cores per instance.", valueName: "cores")) var cpu: Double?
        @Option(help: ArgumentHelp("Memory per instance in GiB.", valueName: "GiB")) var memory: Double?
        @Option(help: ArgumentHelp("Instance type.", valueName: "type")) var instanceType: String?
        @Option(help: ArgumentHelp("Instances the region can give now.", valueName: "n")) var capacity: Int?
        @Option(help: ArgumentHelp("Price per instance-hour.", valueName: "price")) var price: Double?
        @Option(help: ArgumentHelp("Seconds a released instance stays idle (warm) before it is deprovisioned.", valueName: "seconds"))
        var deferScaleIn: Int?
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.run { client, printer in
                let current = try await client.regionInventory(region)["pools"]?.arrayValue?.first { $0["id"]?.stringValue == pool }
                var body: [String: JSONValue] = [:]
                for key in ["computeClass", "qos", "gpuSeries", "gpuMemoryGiB", "gpusPerInstance", "gpuPartitions",
                            "gpuInterconnect", "cpu", "memoryGiB", "instanceType", "capacity", "pricePerHour",
                            "deferScaleInSeconds"] {
                    if let value = current?[key] { body[key] = value }
                }
                // A new model without a vendor: inferred again, not the old model's vendor.
                if series == nil, let value = current?["gpuVendor"] { body["gpuVendor"] = value }
                let given: [String: JSONValue?] = [
                    "computeClass": computeClass.map(JSONValue.string),
                    "qos": qos.isEmpty ? nil : .array(commaList(qos).map(JSONValue.string)),
                    "gpuSeries": series.map(JSONValue.string), "gpuMemoryGiB": gpuMemory.map(JSONValue.number),
                    "gpusPerInstance": gpus.map { .number(Double($0)) }, "cpu": cpu.map(JSONValue.number),
                    "gpuVendor": vendor.map(JSONValue.string),
                    "gpuPartitions": partitions.isEmpty ? nil : .array(commaList(partitions).map(JSONValue.string)),
                    "gpuInterconnect": interconnect.isEmpty ? nil : .array(commaList(interconnect).map(JSONValue.string)),
                    "memoryGiB": memory.map(JSONValue.number), "instanceType": instanceType.map(JSONValue.string),
                    "capacity": capacity.map { .number(Double($0)) }, "pricePerHour": price.map(JSONValue.number),
                    "deferScaleInSeconds": deferScaleIn.map { .number(Double($0)) },
                ]
                for case (let key, let value?) in given { body[key] = value }
                let answer = try await client.putPool(region: region, pool: pool, .object(body))
                try printer.print(answer) { Tables.pools($0, colour: printer.colour) }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a pool (refused while it holds instances).")
        @Argument(help: "The region id.") var region: String
        @Argument(help: "The pool id.") var pool: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.delete("pool \(region)/\(pool)") { try await $0.deletePool(region: region, pool: pool) }
        }
    }
}

/// A tenant quota from flags; nil when none is given.
struct QuotaFlags: ParsableArguments {
    @Option(help: ArgumentHelp("Most GPUs the tenant's running instances may hold.", valueName: "n")) var gpus: Int?
    @Option(help: ArgumentHelp("Most CPU cores.", valueName: "cores")) var cpu: Double?
    @Option(help: ArgumentHelp("Most memory in GiB.", valueName: "GiB")) var memory: Double?
    @Option(help: ArgumentHelp("Most instances.", valueName: "n")) var instances: Int?
    @Option(help: ArgumentHelp(
        "Budget per calendar month (UTC): spent plus what live leases commit, at the pools' prices.", valueName: "amount"))
    var spendPerMonth: Double?
    @Option(help: ArgumentHelp("GPU-hours per calendar month (UTC), counted like the spend budget.", valueName: "hours"))
    var gpuHoursPerMonth: Double?

    var quota: JSONValue? {
        var quota: [String: JSONValue] = [:]
        if let gpus { quota["gpus"] = .number(Double(gpus)) }
        if let cpu { quota["cpu"] = .number(cpu) }
        if let memory { quota["memoryGiB"] = .number(memory) }
        if let instances { quota["instances"] = .number(Double(instances)) }
        if let spendPerMonth { quota["spendPerMonth"] = .number(spendPerMonth) }
        if let gpuHoursPerMonth { quota["gpuHoursPerMonth"] = .number(gpuHoursPerMonth) }
        return quota.isEmpty ? nil : .object(quota)
    }
}

struct AdminTenants: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenants", abstract: "Create tenants, set quotas, rotate tokens.",
        subcommands: [List.self, Create.self, Update.self, TenantShareCommand.self, RotateToken.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every tenant, without tokens.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.show(Tables.tenants) { client in try await client.tenants() }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a tenant; its token is shown once.")
        @Argument(help: "The tenant's name.") var name: String
        @OptionGroup var quota: QuotaFlags
        @OptionGroup var options: ClientOptions

        func run() async throws {
            var body: [String: JSONValue] = ["name": .string(name)]
            body["quota"] = quota.quota
            try await options.show(Tables.tenant) { client in try await client.createTenant(.object(body)) }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rename a tenant or change limits of its quota; the limits not given keep their values.")
        @Argument(help: "The tenant id.") var id: String
        @Option(help: ArgumentHelp("A new name.", valueName: "name")) var name: String?
        @OptionGroup var quota: QuotaFlags
        @Option(help: ArgumentHelp(
            "Make one limit unlimited (repeatable): \(TenantQuota.limitNames.joined(separator: ", ")).", valueName: "limit"))
        var removeLimit: [String] = []
        @Flag(help: "Remove every limit.") var unlimited = false
        @OptionGroup var options: ClientOptions

        func validate() throws {
            if unlimited && (quota.quota != nil || !removeLimit.isEmpty) {
                throw ValidationError("--unlimited excludes the quota flags and --remove-limit")
            }
            if let unknown = removeLimit.first(where: { !TenantQuota.limitNames.contains($0) }) {
                throw ValidationError(
                    "--remove-limit '\(unknown)': not a limit (\(TenantQuota.limitNames.joined(separator: ", ")))")
            }
            if name == nil && quota.quota == nil && removeLimit.isEmpty && !unlimited {
                throw ValidationError("nothing to change")
            }
        }

        func run() async throws {
            var body: [String: JSONValue] = [:]
            if let name { body["name"] = .string(name) }
            // A merge patch: the limits given change, null removes one, the rest stay.
            var patch = quota.quota?.objectValue ?? [:]
            for limit in unlimited ? TenantQuota.limitNames : removeLimit { patch[limit] = .null }
            if !patch.isEmpty { body["quota"] = .object(patch) }
            try await options.show(Tables.tenant) { client in try await client.updateTenant(id, .object(body)) }
        }
    }

    struct RotateToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a new token and revoke the old one at once.")
        @Argument(help: "The tenant id.") var id: String
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await options.show(Tables.tenant) { client in try await client.rotateToken(tenant: id) }
        }
    }
}
