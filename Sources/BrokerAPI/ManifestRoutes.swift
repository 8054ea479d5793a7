import BrokerCore
import BrokerStore
import Foundation
import JSON
import MicroHTTP
import Synchronization

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
/// is `ManifestTranslator`'s, the grant's `ManifestGrantPlan` carried out by the store in
/// one transaction; this file reads the body, plans, grants and answers. Reading and
/// writing run off the cooperative pool: reading on `CPUWork`'s threads in the tenant's turn
/// (refused with 503 past its deadline, before anything is granted), writing the answer of
/// the committed grants at once, never refused. A file sent without `Idempotency-Key` is
/// recorded under a key of its own, so a retry after a lost answer replays its allocations.
enum ManifestRoutes {
    /// Largest answer: the documents are copied once per region used.
    static let maxAnswerBytes = 32 << 20

    static func register(_ routes: inout RouteBuilder) {
        routes.add("POST", "/v1/allocations/from-manifest") { request, context in
            let tenant = try context.tenant
            let key = try AllocationRoutes.idempotencyKey(request)
            let dryRun = try DryRunAnswers.requested(request)
            let asYAML = try wantsYAML(request.headers["Accept"])
            let inventory = try await context.services.inventory.recentInventory().regions
            let catalog = InstanceCatalog(pools: inventory.flatMap { $0.pools.map(\.pool) })
            let regionCount = max(1, inventory.count)
            let groupRegions = groupOrder(inventory)
            let (plan, derived) = try await CPUWork.shared.run(tenant: tenant.id.description) { deadline in
                let (documents, bytes) = try readManifest(request, deadline: deadline)
                let plan = try ManifestTranslator.plan(documents, catalog: catalog)
                let copies = min(plan.replicaCount, regionCount)
                guard bytes.multipliedReportingOverflow(by: copies).partialValue <= maxAnswerBytes else {
                    throw ValidationFailure(
                        field: "", message: "the manifest (\(bytes) bytes once read) copied into up to \(copies) regions "
                            + "would make an answer larger than \(maxAnswerBytes) bytes")
                }
                return (plan, key == nil ? derivedKey(request) : nil)
            }
            try checkRegions(plan, known: Set(inventory.map(\.region.id)))
            let grantPlan = ManifestGrantPlan(
                plan.workloads, key: key ?? derived, groupRegions: groupRegions,
                keyLifetimeSeconds: key == nil ? derivedKeyLifetimeSeconds : nil)
            if dryRun {
                let (placed, result) = try await context.services.allocations.dryRunManifest(
                    tenantId: tenant.id.uuid, plan: grantPlan, actor: context.actor)
                var manifest: ManifestAnswer?
                if let placed {
                    // Nothing was committed, but the documents are written as for a grant: off the cooperative pool.
                    manifest = try await CPUWork.shared.run(tenant: tenant.id.description, afterCommit: true) { _ in
                        answer(plan, placed)
                    }
                }
                let nothingPlaced = placed.map { $0.allSatisfy(\.isEmpty) } ?? false
                return try DryRunAnswers.response(result, grantedStatus: nothingPlaced ? 200 : 201, manifest: manifest)
            }
            let placed = try await context.services.allocations.grantManifest(
                tenantId: tenant.id.uuid, plan: grantPlan, actor: context.actor)
            let views = placed.flatMap { $0 }
            // Nothing placed (every workload at replicas 0): 200, no allocation to point to.
            let location = views.first.map { [("Location", "/v1/allocations/\($0.id.description)")] } ?? []
            let status = views.isEmpty ? 200 : 201
            // The grants are committed: the answer is written at once, on a thread of its own.
            return try await CPUWork.shared.run(tenant: tenant.id.description, afterCommit: true) { _ in
                try answerFault.withLock { try $0?() }
                let answer = answer(plan, placed)
                guard asYAML else { return try JSONBodies.response(status, answer, headers: location) }
                let json = try JSONValue.parse(JSONBodies.encode(answer))
                return HTTPResponse(
                    status: status, headers: HTTPHeaders([("Content-Type", "application/yaml")] + location),
                    body: Array(try YAMLBodies.text(json).utf8))
            }
        }
    }

    /// The answer for a plan's workloads and the allocations granted for each: the
    /// documents per region with the labels of what was granted.
    static func answer(_ plan: ManifestPlan, _ placed: [[AllocationView]]) -> ManifestAnswer {
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
        let output = ManifestTranslator.output(plan, grants: grants)
        return ManifestAnswer(
            allocation: views.first, allocations: views, manifests: output.map(\.manifest),
            manifestRegions: output.map { $0.region.map(JSONValue.string) ?? .null },
            policies: plan.policyOutcomes, warnings: plan.warnings)
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

    /// How long a key the broker derived replays: a retry after a 503 or a lost answer
    /// comes within seconds; the same file sent a minute later is a new request.
    static let derivedKeyLifetimeSeconds = 60

    /// The key of a file sent without `Idempotency-Key`: its body and Content-Type (the
    /// tenant is part of every key). It holds a character no client key may (`·`, not
    /// ASCII), so it never meets one.
    static func derivedKey(_ request: HTTPRequest) -> String {
        let contentType = Array((request.headers["Content-Type"] ?? "").utf8)
        return "from-manifest·" + Digests.sha256Hex(contentType + [0] + request.body)
    }

    /// Test seam: runs after the grants are committed, before the answer is written (a
    /// failing answer path). nil in service.
    static let answerFault = Mutex<(@Sendable () throws -> Void)?>(nil)

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
