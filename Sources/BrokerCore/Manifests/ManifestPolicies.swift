import Foundation
import JSON

/// A scheduling policy object users write beside their workloads (Alibaba's ResourcePolicy,
/// ACK One's and Karmada's PropagationPolicy, ctyun's Policy), read as the broker's placement.
/// `ManifestPolicyKinds` reads each kind; this file decides which workloads a policy governs.
public struct ManifestPolicy: Sendable, Equatable {
    public var kind: String
    public var apiVersion: String
    public var name: String
    public var namespace: String?
    /// Pods it governs: those whose template labels include all of these (ResourcePolicy,
    /// ctyun Policy). Nil for a PropagationPolicy, which selects objects.
    public var podSelector: [String: String]?
    /// Objects it governs (PropagationPolicy).
    public var resourceSelectors: [ResourceSelector] = []
    /// The placement it stands for; nil when `refusal` says why it cannot place a workload.
    public var placement: PlacementPolicy?
    /// Field path and reason, when it reads well but the broker cannot place as it asks.
    public var refusal: FieldError?
    /// Per unit, labels to put on the pods that unit places.
    public var unitPodLabels: [[String: String]] = []
    /// Fields read but not implemented, each named.
    public var warnings: [String] = []
    /// The document as written, without server-set fields: kept once in the output.
    public var document: JSONValue
    /// Where it is in the request (`documents[1]`, or "" alone).
    public var path: String

    /// "ResourcePolicy cost-balance-policy", how answers name it.
    public var title: String { "\(kind) \(name)" }
}

/// One of a PropagationPolicy's `resourceSelectors`.
public struct ResourceSelector: Sendable, Equatable {
    public var apiVersion: String
    public var kind: String
    public var name: String?
    public var namespace: String?
    /// `labelSelector.matchLabels`, on the object's own labels.
    public var matchLabels: [String: String]?
}

/// The policy a workload is placed by: its title and where it is in the request.
public struct GoverningPolicy: Sendable, Equatable {
    public var title: String
    public var path: String
}

/// What a policy in a manifest did: the workloads it governed (`Kind/name`).
public struct PolicyOutcome: Codable, Sendable, Equatable {
    public var kind: String
    public var apiVersion: String
    public var name: String
    public var governs: [String]

    public init(kind: String, apiVersion: String, name: String, governs: [String] = []) {
        self.kind = kind
        self.apiVersion = apiVersion
        self.name = name
        self.governs = governs
    }
}

extension ManifestPolicy {
    /// Whether this policy selects the workload: same namespace (absent reads as `default`,
    /// as `kubectl apply` puts both in one), then its pod labels or its object.
    public func selects(_ workload: ManifestTranslation) -> Bool {
        let metadata = workload.manifest["metadata"]
        let workloadNamespace = metadata?["namespace"]?.stringValue
        if let podSelector {
            guard (namespace ?? "default") == (workloadNamespace ?? "default") else { return false }
            return workload.components.contains { component in
                podSelector.allSatisfy { component.requests[0].labels[$0.key] == $0.value }
            }
        }
        let apiVersion = workload.manifest["apiVersion"]?.stringValue
        let name = metadata?["name"]?.stringValue
        let labels = metadata?["labels"]?.objectValue ?? [:]
        return resourceSelectors.contains { selector in
            selector.apiVersion == apiVersion && selector.kind == workload.kind.kind
                && (selector.name == nil || selector.name == name)
                && (selector.namespace ?? namespace ?? "default") == (workloadNamespace ?? "default")
                && (selector.matchLabels ?? [:]).allSatisfy { labels[$0.key]?.stringValue == $0.value }
        }
    }
}

public enum ManifestPolicies {
    /// The policy kinds read, by kind and API group (any version).
    public static let kinds: [(kind: String, group: String)] = [
        ("ResourcePolicy", "scheduling.alibabacloud.com/"),
        ("PropagationPolicy", "policy.one.alibabacloud.com/"),
        ("PropagationPolicy", "policy.karmada.io/"),
        ("Policy", "scheduling.ctyun.cn/"),
    ]

    /// Whether the document is one of `kinds`.
    public static func isPolicy(_ document: JSONValue) -> Bool {
        guard let kind = document["kind"]?.stringValue, let apiVersion = document["apiVersion"]?.stringValue else {
            return false
        }
        // By bytes: `hasPrefix` compares characters, and a combining mark after the `/` of
        // the group joins it into another character (the contract check sent one).
        return kinds.contains { $0.kind == kind && apiVersion.utf8.starts(with: $0.group.utf8) }
    }

    /// Puts each policy's placement on the workloads it selects. Refused: a workload two
    /// policies select, a policy that cannot place a workload it selects (`refusal`), a
    /// workload that pins its regions itself. A policy selecting nothing is only warned
    /// about, and so is one selecting a workload whose pods run together (its units would
    /// split them).
    public static func govern(_ plan: inout ManifestPlan, _ policies: [ManifestPolicy]) throws(ValidationFailure) {
        guard !policies.isEmpty else { return }
        var outcomes = policies.map { PolicyOutcome(kind: $0.kind, apiVersion: $0.apiVersion, name: $0.name) }
        var warnings = policies.flatMap(\.warnings)
        var errors: [FieldError] = []
        for (index, entry) in plan.entries.enumerated() {
            guard case .workload(var workload) = entry else { continue }
            let selecting = policies.indices.filter { policies[$0].selects(workload) }
            guard let first = selecting.first else { continue }
            let policy = policies[first]
            let title = workloadTitle(workload)
            if selecting.count > 1 {
                let others = selecting.dropFirst().map { policies[$0].title }.joined(separator: ", ")
                errors.append(FieldError(
                    field: policy.path,
                    message: "\(policy.title) and \(others) both select \(title): one policy per workload, "
                        + "as which one wins is undefined"))
                continue
            }
            if workload.together {
                warnings.append("\(policy.title) selects \(title), whose pods run together in one region: its units are not applied")
                continue
            }
            if let refusal = policy.refusal {
                errors.append(FieldError(field: FieldPath.child(policy.path, refusal.field), message: refusal.message))
                continue
            }
            let request = workload.requests[0]
            if let pinned = request.region ?? request.placement?.units.first?.regions?.joined(separator: ", ") {
                errors.append(FieldError(
                    field: policy.path,
                    message: "\(policy.title) selects \(title), whose pod template pins \(pinned): remove the pin or the policy"))
                continue
            }
            for i in workload.components[0].requests.indices {
                workload.components[0].requests[i].placement = policy.placement
            }
            workload.unitPodLabels = policy.unitPodLabels
            workload.governedBy = GoverningPolicy(title: policy.title, path: policy.path)
            plan.entries[index] = .workload(workload)
            outcomes[first].governs.append(title)
        }
        if !errors.isEmpty { throw ValidationFailure(errors: errors) }
        for (policy, outcome) in zip(policies, outcomes) where outcome.governs.isEmpty {
            warnings.append("\(policy.title) selects none of the file's workloads: passed through unchanged")
        }
        plan.policyOutcomes = outcomes
        plan.warnings += warnings
    }

    /// "Deployment/nginx".
    static func workloadTitle(_ workload: ManifestTranslation) -> String {
        let metadata = workload.manifest["metadata"]
        let name = metadata?["name"]?.stringValue ?? metadata?["generateName"]?.stringValue ?? ""
        return "\(workload.kind.kind)/\(name)"
    }

    /// What each region of a placed workload carries: the pod labels of the unit that
    /// placed it (`unitOf`: region → unit index), a region label among them naming the
    /// region granted.
    public static func labelling(
        _ grants: [RegionGrant], _ workload: ManifestTranslation, unitOf: [String: Int]
    ) -> [RegionGrant] {
        guard !workload.unitPodLabels.isEmpty else { return grants }
        return grants.map { grant in
            var grant = grant
            if let unit = unitOf[grant.region], unit < workload.unitPodLabels.count {
                grant.podLabels = workload.unitPodLabels[unit]
                for key in ManifestTranslator.Labels.regionKeys where grant.podLabels[key] != nil {
                    grant.podLabels[key] = grant.region
                }
            }
            return grant
        }
    }

    /// A policy object as the tenant's named policy (`PUT /v1/policies/{name}`, stored under
    /// the path's name): it selects later requests by their labels, so a PropagationPolicy
    /// must select by one label set. Answers the policy and the warnings about what a stored
    /// policy cannot do.
    public static func named(_ document: JSONValue, name: String) throws(ValidationFailure) -> (NamedPolicy, [String]) {
        guard let policy = try read(document, at: "") else {
            throw ValidationFailure(field: "kind", message: "is not a policy kind")
        }
        var errors: [FieldError] = []
        if !Rules.isPolicyName(name) { errors.append(FieldError(field: "name", message: "must match \(Rules.policyNamePattern)")) }
        if let refusal = policy.refusal { errors.append(refusal) }
        var selector = policy.podSelector ?? [:]
        if policy.resourceSelectors.count > 1 {
            errors.append(FieldError(field: "spec.resourceSelectors", message: "must have one item: a stored policy has one label selector"))
        } else if let resource = policy.resourceSelectors.first {
            if let labels = resource.matchLabels, resource.name == nil {
                selector = labels
            } else {
                errors.append(FieldError(
                    field: "spec.resourceSelectors[0]",
                    message: "selects by name or kind only: a stored policy selects requests by their labels "
                        + "(labelSelector.matchLabels); a name selects only in a manifest file"))
            }
        }
        guard errors.isEmpty, let placement = policy.placement else { throw ValidationFailure(errors: errors) }
        var warnings = policy.warnings
        if policy.name != name {
            warnings.append("\(policy.title): stored as \(name), the name in the path")
        }
        if policy.unitPodLabels.contains(where: { !$0.isEmpty }) {
            warnings.append("\(policy.title): units' podLabels are injected into manifests placed with the file; "
                + "a stored policy places requests, which carry the broker's own pod labels")
        }
        return (NamedPolicy(name: name, selector: selector, policy: placement), warnings)
    }
}
