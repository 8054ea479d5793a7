import Foundation
import JSON

/// Parses region bodies: `POST /v1/admin/regions` and `PUT /v1/admin/regions/{id}` (a full
/// replacement of the settable fields; `id` in the body is optional and must equal the path).
/// `createdAt`/`updatedAt` are the store's and stay nil here.
public enum RegionSpec {
    public static let maxNetworkIdLength = 128
    public static let maxVSwitches = 64

    /// `POST`: `id` required.
    public static func parse(_ json: JSONValue) throws(ValidationFailure) -> Region {
        try parse(json, pathId: nil)
    }

    /// `PUT /v1/admin/regions/{pathId}`: `id` optional, equal to `pathId` when given.
    public static func parse(_ json: JSONValue, pathId: String?) throws(ValidationFailure) -> Region {
        let errors = FieldErrorCollector()
        if let pathId, !Rules.isRegionId(pathId) {
            errors.add("id", "must match \(Rules.regionIdPattern)")
        }
        guard let r = errors.object(json) else { throw ValidationFailure(errors: errors.errors) }
        var id = r.string("id", required: pathId == nil, maxLength: 63, pattern: .regionId)
        if let pathId {
            if let bodyId = id, bodyId != pathId {
                errors.add("id", "must equal the id in the path")
            }
            id = pathId
        }
        let displayName = r.string("displayName", maxLength: 256)
        let kind = r.enumeration("kind", RegionKind.self) ?? .serverless
        let primary = r.bool("primary") ?? false
        let vpcId = r.string("vpcId", required: true, maxLength: maxNetworkIdLength)
        let vSwitchIds = r.stringArray("vSwitchIds", required: true, maxItems: maxVSwitches, itemMaxLength: maxNetworkIdLength)
        let securityGroupId = r.string("securityGroupId", required: true, maxLength: maxNetworkIdLength)
        let labels = r.labels("labels") ?? [:]
        let state = r.enumeration("state", RegionState.self) ?? .active
        r.allow("createdAt", "updatedAt")  // echoed back from a GET: ignored
        r.finish()
        guard errors.isEmpty, let id, let vpcId, let vSwitchIds, let securityGroupId else {
            throw ValidationFailure(errors: errors.errors)
        }
        return Region(id: id, displayName: displayName, kind: kind, primary: primary, vpcId: vpcId,
                      vSwitchIds: vSwitchIds, securityGroupId: securityGroupId, labels: labels, state: state)
    }
}
