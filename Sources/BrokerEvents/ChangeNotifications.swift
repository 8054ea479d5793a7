import BrokerStore
import Foundation
import Logging
import PostgresClient

/// Follows the database's change notifications (migration 6) on a listening
/// connection: drops this broker's token, settings and inventory caches when another
/// broker changed what they hold, and calls `capacityAppeared` (on inventory and tenant
/// changes) so the pending admitter runs now rather than at its next interval. A (re)connection counts as every change,
/// since notifications sent while the connection was down are lost.
public final class ChangeNotifications: Sendable {
    private let listener: PostgresListener

    public init(
        configuration: PostgresConfiguration, inventory: InventoryStore, tenants: TenantStore,
        allocations: AllocationStore, logger: Logger, capacityAppeared: @escaping @Sendable () -> Void
    ) {
        listener = PostgresListener(configuration: configuration, channels: ChangeChannel.all) { event in
            switch event {
            case .connected:
                logger.debug("listening for changes")
                inventory.dropCachedInventory()
                allocations.dropCachedInventory()
                allocations.dropCachedSettings(tenant: nil)
                tenants.dropCachedTokens(tenant: nil)
                capacityAppeared()
            case .notification(ChangeChannel.inventory, _):
                inventory.dropCachedInventory()
                allocations.dropCachedInventory()
                capacityAppeared()
            case .notification(ChangeChannel.tenant, let payload):
                let tenant = UUID(uuidString: payload)
                allocations.dropCachedSettings(tenant: tenant)
                tenants.dropCachedTokens(tenant: tenant)
                // A raised quota or budget, or a changed policy, may let a pending request in.
                capacityAppeared()
            case .notification:
                break
            }
        }
    }

    public func stop() {
        listener.stop()
    }
}
