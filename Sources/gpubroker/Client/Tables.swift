import BrokerCore
import Foundation
import JSON

/// The `-o table` form of each answer of the API.
enum Tables {
    static func regions(_ document: JSONValue, colour: Bool) -> String {
        var table = Table("ID", "KIND", "PRIMARY", "STATE", "VPC", "VSWITCHES", "LABELS")
        for region in document["regions"]?.arrayValue ?? [] {
            table.add(
                Cell(region.text("id")), Cell(region.text("kind")), Cell(region["primary"]?.boolValue == true ? "yes" : "no"),
                .state(region.text("state")), Cell(region.text("vpcId")), Cell(region.text("vSwitchIds")),
                Cell(region.text("labels")))
        }
        return table.render(colour: colour)
    }

    static func region(_ region: JSONValue, colour: Bool) -> String {
        var details = Details()
        details.add("ID", Cell(region.text("id")))
        if let name = region["displayName"]?.stringValue { details.add("Name", Cell(name)) }
        details.add("Kind", Cell(region.text("kind")))
        details.add("Primary", Cell(region["primary"]?.boolValue == true ? "yes" : "no"))
        details.add("State", .state(region.text("state")))
        details.add("VPC", Cell(region.text("vpcId")))
        details.add("vSwitches", Cell(region.text("vSwitchIds")))
        details.add("Security group", Cell(region.text("securityGroupId")))
        details.add("Labels", Cell(region.text("labels")))
        details.add("Created", Cell(region.text("createdAt")))
        return details.render(colour: colour)
    }

    /// One pool (`PoolView`), the pools of one region (`RegionInventory`) or of several
    /// (`{"regions": [RegionInventory]}`).
    static func pools(_ document: JSONValue, colour: Bool) -> String {
        let pools = document["pools"] == nil && document["regions"] == nil
            ? [document] : (document["regions"]?.arrayValue ?? [document]).flatMap { $0["pools"]?.arrayValue ?? [] }
        // The API's words: `allocated` counts idle (warm) instances, `available` is new instances,
        // and AVAILABLE REPLICAS (available + idle) is what `inventory --class …` calls it: what a
        // grant can get from the pool now.
        var table = Table(
            "REGION", "POOL", "CLASS", "SERIES", "GPUS", "CPU", "MEMORY", "INSTANCE TYPE", "CAPACITY", "ALLOCATED", "IDLE",
            "AVAILABLE", "AVAILABLE REPLICAS", "PRICE/H")
        for pool in pools {
            let replicas = Int((pool["available"]?.numberValue ?? 0) + (pool["idle"]?.numberValue ?? 0))
            let style: Style = pool["overcommitted"]?.boolValue == true ? .bad : replicas == 0 ? .warn : .plain
            table.add(
                Cell(pool.text("region")), Cell(pool.text("id")), Cell(pool.text("computeClass")), Cell(pool.text("gpuSeries")),
                Cell(pool.text("gpusPerInstance")), Cell(pool.text("cpu")), Cell(pool.text("memoryGiB")),
                Cell(pool.text("instanceType")), Cell(pool.text("capacity")), Cell(pool.text("allocated")),
                Cell(pool.text("idle")), Cell(pool.text("available")), Cell("\(replicas)", style), Cell(pool.text("pricePerHour")))
        }
        return table.render(colour: colour)
    }

    static func shapeAvailability(_ document: JSONValue, colour: Bool) -> String {
        var table = Table("REGION", "AVAILABLE REPLICAS", "BEST POOL", "PRICE/H")
        for region in document["regions"]?.arrayValue ?? [] {
            let available = region["availableReplicas"]?.numberValue ?? 0
            table.add(
                Cell(region.text("region")), Cell(region.text("availableReplicas"), available == 0 ? .warn : .good),
                Cell(region.text("bestPool")), Cell(region.text("pricePerHour")))
        }
        return table.render(colour: colour)
    }

    // MARK: allocations

    static func allocations(_ document: JSONValue, colour: Bool) -> String {
        var table = Table("ID", "STATUS", "PLACED", "SHAPE", "REGIONS", "LEASE", "AGE")
        for allocation in document["allocations"]?.arrayValue ?? [] {
            table.add(
                Cell(allocation.text("id")), .state(allocation.text("status")), Cell(placed(allocation)),
                Cell(shape(allocation)), Cell(runningRegions(allocation)), Cell(lease(allocation)),
                Cell(age(allocation["createdAt"]?.stringValue)))
        }
        var text = table.render(colour: colour)
        if let cursor = document["nextCursor"]?.stringValue {
            text += "more: --cursor \(cursor)\n"
        }
        return text
    }

    /// One allocation: its fields, its instances, and the placement decisions.
    static func allocation(_ allocation: JSONValue, colour: Bool) -> String {
        var details = Details()
        details.add("ID", Cell(allocation.text("id")))
        details.add("Status", .state(allocation.text("status")))
        details.add("Placed", Cell(placed(allocation)))
        details.add("Shape", Cell(shape(allocation)))
        let request = allocation["request"]
        if let region = request?["region"]?.stringValue { details.add("Region", Cell("\(region) (pinned)")) }
        if let placement = request?["placement"] { details.add("Placement", Cell(placementText(placement))) }
        if let expires = allocation["leaseExpiresAt"]?.stringValue {
            details.add("Lease", Cell("expires \(age(expires)) (\(expires))"))
        }
        if let deadline = allocation["queueDeadline"]?.stringValue {
            details.add("Queue deadline", Cell("\(deadline) (\(age(deadline)))"))
        }
        details.add("Labels", Cell(allocation.text("labels")))
        details.add("Created", Cell(allocation.text("createdAt")))
        var text = details.render(colour: colour)

        let instances = allocation["instances"]?.arrayValue ?? []
        if !instances.isEmpty {
            var table = Table("INSTANCE", "REGION", "POOL", "INSTANCE TYPE", "SERIES", "VSWITCH", "UNIT", "STATE", "AGE")
            for instance in instances {
                table.add(
                    Cell(instance.text("id")), Cell(instance.text("region")), Cell(instance.text("poolId")),
                    Cell(instance.text("instanceType")), Cell(instance.text("gpuSeries")), Cell(instance.text("vSwitchId")),
                    Cell(instance.text("unit")), .state(instance.text("state")),
                    Cell(age(instance["createdAt"]?.stringValue)))
            }
            text += "\n" + table.render(colour: colour)
        }
        let decisions = allocation["decisions"]?.arrayValue ?? []
        if !decisions.isEmpty {
            var table = Table("REGION", "REPLICAS", "DECISION")
            for decision in decisions {
                table.add(Cell(decision.text("region")), Cell(decision.text("replicas")), Cell(decision.text("reason")))
            }
            text += "\n" + table.render(colour: colour)
        }
        if let alternatives = allocation["alternatives"]?.arrayValue {
            text += "\nFits now instead\n" + Tables.alternatives(alternatives, colour: colour)
        }
        return text
    }

    static func events(_ document: JSONValue, colour: Bool) -> String {
        var table = Table("SEQ", "AT", "KIND", "REGION", "POOL", "INSTANCE", "DELTA", "ACTOR")
        for event in document["events"]?.arrayValue ?? [] {
            let delta = event["delta"]?.numberValue ?? 0
            table.add(
                Cell(event.text("seq")), Cell(event.text("at")), Cell(event.text("kind")), Cell(event.text("region")),
                Cell(event.text("poolId")), Cell(event.text("instanceId")),
                Cell(delta > 0 ? "+\(event.text("delta"))" : event.text("delta")), Cell(event.text("actor")))
        }
        return table.render(colour: colour)
    }

    /// A pending allocation's place in the queue (`GET /v1/allocations/{id}/queue`).
    static func queue(_ position: JSONValue, colour: Bool) -> String {
        var details = Details()
        details.add("Position", Cell(position.text("position")))
        details.add("Replicas ahead", Cell(position.text("replicasAhead")))
        details.add("Replicas wanted", Cell(position.text("replicasWanted")))
        let pools = (position["pools"]?.arrayValue ?? []).compactMap(\.stringValue)
        details.add("Pools", pools.isEmpty ? Cell("none: no current pool fits", .bad) : Cell(pools.joined(separator: ",")))
        details.add("Releases last hour", Cell(position.text("releasesLastHour")))
        details.add("Estimated admission", Cell(position["estimatedAdmissionAt"]?.stringValue.map { "\($0) (\(age($0)))" } ?? "unknown"))
        return details.render(colour: colour)
    }

    static func placed(_ allocation: JSONValue) -> String {
        "\(allocation.text("placedReplicas"))/\(allocation.text("replicas"))"
    }

    /// "gpu T4|A10 ×1, 4 CPU, 15 GiB" — the replica shape as the broker understood it.
    static func shape(_ allocation: JSONValue) -> String {
        guard let shape = allocation["request"]?["shape"] else { return "-" }
        var parts = [shape.text("computeClass")]
        let series = (shape["gpuSeries"]?.arrayValue ?? []).compactMap(\.stringValue)
        let gpus = shape["gpuCount"]?.numberValue ?? 0
        if gpus > 0 {
            parts.append("\(series.isEmpty ? "GPU" : series.joined(separator: "|"))×\(shape.text("gpuCount"))")
        }
        var text = parts.joined(separator: " ") + ", \(shape.text("cpu")) CPU, \(shape.text("memoryGiB")) GiB"
        if shape["qos"]?.stringValue == "best-effort" { text += ", best-effort" }
        return text
    }

    /// "cn-beijing=3,cn-hangzhou=1": running instances per region.
    static func runningRegions(_ allocation: JSONValue) -> String {
        var counts: [String: Int] = [:]
        var order: [String] = []
        for instance in allocation["instances"]?.arrayValue ?? [] where instance["state"]?.stringValue == "running" {
            let region = instance.text("region")
            if counts[region] == nil { order.append(region) }
            counts[region, default: 0] += 1
        }
        return order.isEmpty ? "-" : order.map { "\($0)=\(counts[$0]!)" }.joined(separator: ",")
    }

    /// "in 4m59s" until the lease runs out, or "-" without a lease.
    static func lease(_ allocation: JSONValue) -> String {
        guard let expires = allocation["leaseExpiresAt"]?.stringValue else { return "-" }
        return age(expires)
    }

    static func placementText(_ placement: JSONValue) -> String {
        let units = (placement["units"]?.arrayValue ?? []).map { unit -> String in
            var text = unit["regions"].map(\.cellText) ?? ""
            if let selector = unit["selector"] {
                let labels = selector["labels"]?.objectValue ?? [:]
                text += [selector["kind"]?.stringValue, labels.isEmpty ? nil : selector.text("labels")]
                    .compactMap { $0 }.joined(separator: " ")
            }
            if let max = unit["max"] { text += " max \(max.cellText)" }
            return text
        }
        return "\(placement.text("strategy")): " + units.joined(separator: " → ")
    }

    // MARK: tenants

    static func tenants(_ document: JSONValue, colour: Bool) -> String {
        var table = Table("ID", "NAME", "QUOTA", "AGE")
        for tenant in document["tenants"]?.arrayValue ?? [] {
            table.add(Cell(tenant.text("id")), Cell(tenant.text("name")), Cell(quota(tenant)), Cell(age(tenant["createdAt"]?.stringValue)))
        }
        return table.render(colour: colour)
    }

    static func tenant(_ tenant: JSONValue, colour: Bool) -> String {
        var details = Details()
        details.add("ID", Cell(tenant.text("id")))
        details.add("Name", Cell(tenant.text("name")))
        details.add("Quota", Cell(quota(tenant)))
        if let token = tenant["token"]?.stringValue { details.add("Token", Cell(token, .bold)) }
        details.add("Created", Cell(tenant.text("createdAt")))
        let note = tenant["token"] == nil ? "" : "\nThe token is shown only this once: keep it (gpubroker login --token ...).\n"
        return details.render(colour: colour) + note
    }

    static func tokens(_ document: JSONValue, colour: Bool) -> String {
        var table = Table("ID", "NAME", "ROLE", "SCOPES", "EXPIRES", "LAST USED", "AGE")
        for token in document["tokens"]?.arrayValue ?? [] {
            table.add(
                Cell(token.text("id")), Cell(token.text("name")), Cell(token.text("role")), Cell(scopes(token)),
                Cell(token["expiresAt"]?.stringValue ?? "never"), Cell(token["lastUsedAt"]?.stringValue ?? "never"),
                Cell(age(token["createdAt"]?.stringValue)))
        }
        return table.render(colour: colour)
    }

    static func token(_ token: JSONValue, colour: Bool) -> String {
        var details = Details()
        details.add("ID", Cell(token.text("id")))
        details.add("Name", Cell(token.text("name")))
        details.add("Role", Cell(token.text("role")))
        details.add("Scopes", Cell(scopes(token)))
        details.add("Expires", Cell(token["expiresAt"]?.stringValue ?? "never"))
        if let secret = token["token"]?.stringValue { details.add("Token", Cell(secret, .bold)) }
        let note = token["token"] == nil ? "" : "\nThe token is shown only this once: keep it.\n"
        return details.render(colour: colour) + note
    }

    static func scopes(_ token: JSONValue) -> String {
        token["scopes"]?.arrayValue?.compactMap(\.stringValue).joined(separator: ",") ?? "all of its role"
    }

    static func quota(_ tenant: JSONValue) -> String {
        let quota = tenant["quota"]?.objectValue ?? [:]
        return quota.isEmpty ? "unlimited" : tenant.text("quota")
    }
}

typealias Cell = Table.Cell
