import BrokerCore
import BrokerStore
import Foundation
import JSON
import MicroHTTP

/// `201` answer of `POST /v1/allocations/from-manifest`.
struct ManifestAnswer: Encodable {
    /// The first workload's allocation (the only one for a single workload); absent when
    /// no workload has pods to place.
    var allocation: AllocationView?
    /// One allocation per workload with pods, in document order.
    var allocations: [AllocationView]
    var manifests: [JSONValue]
    /// The region each manifest is for; null: cluster-scoped, once overall.
    var manifestRegions: [JSONValue]
    /// Each policy object in the file and the workloads it governed.
    var policies: [PolicyOutcome]
    /// Documents passed through without being understood, workloads with nothing to place,
    /// policy fields the broker does not implement.
    var warnings: [String]
}

/// Kubernetes manifest files (JSON or YAML, one document, a stream or a `List`) in; one
/// allocation per workload and the documents to apply in each region out. The translation
/// is `ManifestTranslator`'s; this file reads the body, plans, places and answers. Reading
/// and writing run on `CPUWork`'s threads, never on the cooperative pool: reading in the
/// tenant's turn (refused with 503 past its deadline, before anything is granted), writing
/// the answer of the committed grants ahead of all other work, never refused.
enum ManifestRoutes {
    /// Largest answer: the documents are copied once per region used.
    static let maxAnswerBytes = 32 << 20

    static func register(_ routes: inout RouteBuilder) {
        routes.add("POST", "/v1/allocations/from-manifest") { request, context in
            let tenant = try context.tenant
            let key = try AllocationRoutes.idempotencyKey(request)
            let asYAML = try wantsYAML(request.headers["Accept"])
            let inventory = try await context.services.inventory.recentInventory().regions
            let catalog = InstanceCatalog(pools: inventory.flatMap { $0.pools.map(\.pool) })
            let regionCount = max(1, inventory.count)
            let groupRegions = groupOrder(inventory)
            let plan = try await CPUWork.shared.run(tenant: tenant.id.description) { deadline in
                let (documents, bytes) = try readManifest(request, deadline: deadline)
                let plan = try ManifestTranslator.plan(documents, catalog: catalog)
                let copies = min(plan.replicaCount, regionCount)
                guard bytes.multipliedReportingOverflow(by: copies).partialValue <= maxAnswerBytes else {
                    throw ValidationFailure(
                        field: "", message: "the manifest (\(bytes) bytes once read) copied into up to \(copies) regions "
                            + "would make an answer larger than \(maxAnswerBytes) bytes")
                }
                return plan
            }
            try checkRegions(plan, known: Set(inventory.map(\.region.id)))
            let placed = try await place(
                plan.workloads, tenantId: tenant.id.uuid, context: context, key: key, groupRegions: groupRegions)
            let views = placed.flatMap { $0 }
            let grants = zip(plan.workloads, placed).map { workload, views in
                if workload.isEmpty { return [RegionGrant]() }
                let perAllocation = views.map { view in
                    ManifestPolicies.labelling(
                        ManifestTranslator.grants(instances: view.instances.map { ($0.region, $0.instanceType, $0.gpuSeries) }),
                        workload, unitOf: Dictionary(view.instances.compactMap { i in i.unit.map { (i.region, $0) } }) { a, _ in a })
                }
                return workload.together ? perAllocation.map { $0[0] } : perAllocation[0]
            }
            // Nothing placed (every workload at replicas 0): 200, no allocation to point to.
            let location = views.first.map { [("Location", "/v1/allocations/\($0.id.description)")] } ?? []
            let status = views.isEmpty ? 200 : 201
            // The grants are committed: the answer is written however long the work waits.
            return try await CPUWork.shared.run(tenant: tenant.id.description, afterCommit: true) { _ in
                let output = ManifestTranslator.output(plan, grants: grants)
                let answer = ManifestAnswer(
                    allocation: views.first, allocations: views, manifests: output.map(\.manifest),
                    manifestRegions: output.map { $0.region.map(JSONValue.string) ?? .null },
                    policies: plan.policyOutcomes, warnings: plan.warnings)
                guard asYAML else { return try JSONBodies.response(status, answer, headers: location) }
                let json = try JSONValue.parse(JSONBodies.encode(answer))
                return HTTPResponse(
                    status: status, headers: HTTPHeaders([("Content-Type", "application/yaml")] + location),
                    body: Array(try YAMLBodies.text(json).utf8))
            }
        }
    }

    /// Places every workload: one allocation, or for a workload whose pod templates run
    /// together, one allocation per template in one region. When one cannot be placed, the
    /// ones placed before it are released, their keys forgotten, and its refusal is the
    /// answer. With an `Idempotency-Key`, the i-th workload (from 1) uses the key `<key>#<i>`.
    static func place(
        _ workloads: [ManifestTranslation], tenantId: UUID, context: RequestContext, key: String?, groupRegions: [String]
    ) async throws -> [[AllocationView]] {
        var placed: [[AllocationView]] = []
        var keys: [String] = []
        do {
            for (index, workload) in workloads.enumerated() {
                if workload.isEmpty {
                    placed.append([])
                    continue
                }
                let workloadKey = index == 0 ? key : key.map { "\($0)#\(index)" }
                if let workloadKey { keys.append(workloadKey) }
                if workload.together {
                    placed.append(try await context.services.allocations.createTogether(
                        tenantId: tenantId, components: workload.components.map { $0.requests[0] },
                        regions: ManifestTranslator.allowedRegions(workload, among: groupRegions), actor: context.actor,
                        idempotencyKey: workloadKey))
                } else {
                    placed.append([try await create(workload, tenantId: tenantId, context: context, key: workloadKey)])
                }
            }
        } catch {
            // A withdrawal that fails here (the database gone) leaves the allocations to
            // expire with their lease: the refusal is still the answer.
            try? await context.services.allocations.withdraw(
                tenantId: tenantId, ids: placed.joined().map(\.id.uuid), idempotencyKeys: keys, actor: context.actor)
            throw error
        }
        return placed
    }

    /// A region pin names a region this broker has: a well-formed id of no region is a
    /// mistake in the manifest (422), not a region out of capacity.
    static func checkRegions(_ plan: ManifestPlan, known: Set<String>) throws {
        for workload in plan.workloads {
            if let policy = workload.governedBy {
                // A policy's units name regions (`*` aside): each must be one of this broker's.
                let named = workload.requests[0].placement?.units.flatMap { $0.regions ?? [] } ?? []
                if let unknown = named.first(where: { $0 != "*" && !known.contains($0) }) {
                    throw ValidationFailure(
                        field: policy.path, message: "\(policy.title) names unknown region '\(unknown)': no region of this broker has that id")
                }
                continue
            }
            for component in workload.components {
                let request = component.requests[0]
                // A pin must name a region; an affinity listing several, at least one.
                let allowed = request.region.map { [$0] } ?? request.placement?.units.first?.regions ?? []
                if !allowed.isEmpty, !allowed.contains(where: known.contains), let unknown = allowed.first {
                    throw ValidationFailure(
                        field: component.site.name, message: "pins unknown region '\(unknown)': no region of this broker has that id")
                }
            }
        }
    }

    /// Regions a group is tried in, in order: active ones, the primary first, then by id.
    static func groupOrder(_ inventory: [RegionInventory]) -> [String] {
        inventory.filter { $0.region.state == .active }.sorted { a, b in
            a.region.primary != b.region.primary ? a.region.primary : a.region.id < b.region.id
        }.map(\.region.id)
    }

    /// Tries each request in order; the first that can be satisfied is granted.
    /// With an `Idempotency-Key` a replay matches the request that was granted: the other
    /// requests' bodies differ from the recorded one, so they answer "reused" and are skipped.
    static func create(
        _ translation: ManifestTranslation, tenantId: UUID, context: RequestContext, key: String?
    ) async throws -> AllocationView {
        let several = translation.requests.count > 1
        var decisions: [PlacementDecision] = []
        var details: [String] = []
        var reused = false
        for allocationRequest in translation.requests {
            do {
                return try await context.services.allocations.create(
                    tenantId: tenantId, request: allocationRequest, actor: context.actor, idempotencyKey: key)
            } catch StoreError.insufficientCapacity(let detail, let found) where several {
                let attempt = describe(allocationRequest.shape)
                details.append("\(attempt): \(detail)")
                decisions += found.map { PlacementDecision(region: $0.region, replicas: $0.replicas, reason: "\(attempt): \($0.reason)") }
            } catch StoreError.idempotencyKeyReused where several {
                reused = true
            }
        }
        if reused { throw StoreError.idempotencyKeyReused }
        throw StoreError.insufficientCapacity(
            "no choice the manifest allows can be satisfied: \(details.joined(separator: "; "))", decisions: decisions)
    }

    /// What distinguishes one attempt from the next: its instance type, else its series.
    private static func describe(_ shape: ComputeShape) -> String {
        if let type = shape.instanceType { return type }
        return shape.gpuSeries.isEmpty ? "any series" : shape.gpuSeries.joined(separator: ", ")
    }

    /// The body's documents and their size once read: JSON (one document, possibly a
    /// `List`), or a YAML stream (`application/yaml`, `text/yaml`, `application/x-yaml`).
    static func readManifest(_ request: HTTPRequest, deadline: ContinuousClock.Instant) throws -> ([JSONValue], Int) {
        let contentType = request.headers["Content-Type"]
        if JSONBodies.isJSON(contentType) { return ([try JSONBodies.parse(request.body)], request.body.count) }
        guard YAMLBodies.isYAML(contentType) else {
            throw Problem.unsupportedMediaType(
                "send the manifest as 'Content-Type: application/json', 'application/yaml' or 'text/yaml'")
        }
        return try YAMLBodies.parseStream(request.body, deadline: deadline)
    }

    /// Whether `Accept` prefers YAML over JSON (the first of them listed with q > 0 wins).
    static func wantsYAML(_ accept: String?) throws -> Bool {
        guard let accept else { return false }
        for item in accept.split(separator: ",") {
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            if parts.dropFirst().contains(where: { $0.replacingOccurrences(of: " ", with: "") == "q=0" }) { continue }
            if YAMLBodies.isYAML(parts[0]) { return true }
            if JSONBodies.isJSON(parts[0]) || parts[0] == "*/*" || parts[0] == "application/*" { return false }
        }
        return false
    }
}
