import Foundation

/// The `LISTEN` channels that migration 6's triggers notify, and what a broker drops
/// when they fire. Other brokers' writes then show at once instead of when a cache
/// entry ages out.
public enum ChangeChannel {
    /// Capacity appeared or the inventory changed (payload empty).
    public static let inventory = "gpb_inventory"
    /// A tenant's token, quota or policies changed (payload: the tenant id).
    public static let tenant = "gpb_tenant"
    public static let all = [inventory, tenant]
}

extension InventoryStore {
    /// Another broker changed regions or pools: the next read starts afresh.
    public func dropCachedInventory() {
        snapshots.invalidate()
    }
}

extension AllocationStore {
    public func dropCachedInventory() {
        snapshots.invalidate()
    }

    /// The tenant's quota or policies changed; nil: any tenant's may have.
    public func dropCachedSettings(tenant: UUID?) {
        if let tenant { settings.forget(tenant) } else { settings.forget { _ in true } }
    }
}

extension TenantStore {
    /// The tenant's token changed; nil: any tenant's may have.
    public func dropCachedTokens(tenant: UUID?) {
        cache.forget { tenant == nil || $0.id.uuid == tenant }
    }
}
