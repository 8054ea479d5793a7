import JSON

// The JSON every grant writes, by hand for speed (see `JSONWritable`): the request, the
// decisions, the answer, the placements. `SortedJSONEncoderTests` and `JSONWritableTests`
// check each against its `Codable` form, byte for byte.

extension RegionSelector: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("kind", kind)
        json.member("labels", labels)
        json.endObject()
    }
}

extension PlacementUnit: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("max", max)
        json.member("regions", regions)
        json.member("selector", selector)
        json.member("weight", weight)
        json.endObject()
    }
}

extension PlacementPolicy: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("maxPricePerHour", maxPricePerHour)
        json.key("strategy")
        json.value(strategy)
        json.member("units", units)
        json.endObject()
    }
}

extension ModelSpec: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("batchSize", batchSize)
        json.member("contextLength", contextLength)
        json.member("hiddenSize", hiddenSize)
        json.member("kvCacheGiB", kvCacheGiB)
        json.member("layers", layers)
        json.member("parameters", parameters)
        json.member("precision", precision)
        json.member("usableFraction", usableFraction)
        json.endObject()
    }
}

extension ComputeShape: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("computeClass", computeClass)
        json.member("cpu", cpu)
        json.member("gpuCount", gpuCount)
        json.member("gpuInterconnect", gpuInterconnect)
        json.member("gpuPartition", gpuPartition)
        json.member("gpuSeries", gpuSeries)
        json.member("gpuVendor", gpuVendor)
        json.member("instanceType", instanceType)
        json.member("maxPricePerHour", maxPricePerHour)
        json.member("memoryGiB", memoryGiB)
        json.member("minGPUMemoryGiB", minGPUMemoryGiB)
        json.member("qos", qos)
        json.member("requiredGPUMemoryGiB", requiredGPUMemoryGiB)
        json.endObject()
    }
}

extension AllocationRequest: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("allOrNothing", allOrNothing)
        json.member("labels", labels)
        json.member("leaseSeconds", leaseSeconds)
        json.member("model", model)
        json.member("placement", placement)
        json.member("queue", queue)
        json.member("queueTimeoutSeconds", queueTimeoutSeconds)
        json.member("region", region)
        json.member("replicas", replicas)
        json.member("shape", shape)
        json.endObject()
    }
}

extension PlacementDecision: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("reason", reason)
        json.member("region", region)
        json.member("replicas", replicas)
        json.endObject()
    }
}

extension ResourceID: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.value(description)
    }
}

extension InstanceView: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("cpu", cpu)
        json.member("createdAt", createdAt)
        json.member("gpuCount", gpuCount)
        json.member("gpuSeries", gpuSeries)
        json.member("id", id)
        json.member("instanceType", instanceType)
        json.member("labels", labels)
        json.member("memoryGiB", memoryGiB)
        json.member("poolId", poolId)
        json.member("region", region)
        json.member("reused", reused)
        json.member("securityGroupId", securityGroupId)
        json.member("state", state)
        json.member("unit", unit)
        json.member("vSwitchId", vSwitchId)
        json.member("vpcId", vpcId)
        json.endObject()
    }
}

extension AllocationView: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        if let alternatives { json.member("alternatives", alternatives) }
        json.member("createdAt", createdAt)
        json.member("decisions", decisions)
        json.member("id", id)
        json.member("instances", instances)
        json.member("labels", labels)
        json.member("leaseExpiresAt", leaseExpiresAt)
        json.member("leaseSeconds", leaseSeconds)
        json.member("placedReplicas", placedReplicas)
        json.member("queueDeadline", queueDeadline)
        json.member("replicas", replicas)
        json.member("request", request)
        json.member("status", status)
        json.member("tenantId", tenantId)
        json.member("updatedAt", updatedAt)
        json.endObject()
    }
}

extension QueueAlternative: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("change", change)
        json.member("gpuSeries", gpuSeries)
        json.member("maxPricePerHour", maxPricePerHour)
        json.member("placedReplicas", placedReplicas)
        json.member("pricePerHour", pricePerHour)
        json.member("region", region)
        json.member("request", request)
        json.endObject()
    }
}

extension PlacementRow: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("count", placement.count)
        json.member("pool", placement.poolId)
        json.member("region", placement.region)
        json.member("unit", placement.unit)
        json.member("vswitches", vSwitchIds)
        json.endObject()
    }
}

extension AllocationRecord: JSONWritable {
    public func write(to json: inout JSONWriter) {
        json.beginObject()
        json.member("actor", actor)
        json.member("allocation_id", id)
        json.member("decisions", decisions)
        json.member("labels", labels)
        json.member("lease_seconds", leaseSeconds)
        json.member("max_price_per_hour", maxPricePerHour)
        json.member("placed_replicas", placedReplicas)
        json.member("placements", placements)
        json.member("policies", policies)
        json.member("replicas", replicas)
        json.member("request", request)
        json.member("status", status)
        json.member("tenant_id", tenantId)
        json.endObject()
    }
}
