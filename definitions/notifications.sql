-- Notifications that wake every broker (LISTEN/NOTIFY).

-- Capacity appeared (a report, a release, a region back in service) or the inventory
-- changed: brokers drop their inventory snapshots and wake their pending admitters.
-- Grants take capacity and notify nobody: NOTIFY serialises commits, so it stays off
-- the grant path. One constant payload, which PostgreSQL folds to one per transaction.
CREATE FUNCTION gpb_notify_inventory() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gpb_inventory', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER pools_notify_added AFTER INSERT OR DELETE ON pools
    FOR EACH STATEMENT EXECUTE FUNCTION gpb_notify_inventory();

-- A grant's UPDATE (allocated, updated_at) passes this over: PostgreSQL prepares a
-- trigger's WHEN clause once per statement that may fire it, and skips a trigger with a
-- column list when the UPDATE sets none of its columns. A report (a change of what the
-- pool is) notifies through its event's trigger, pools_event_reported (inventory.sql).
CREATE TRIGGER pools_notify_freed AFTER UPDATE OF allocated, idle ON pools
    FOR EACH ROW
    WHEN (NEW.allocated < OLD.allocated OR NEW.idle > OLD.idle)
    EXECUTE FUNCTION gpb_notify_inventory();

CREATE TRIGGER regions_notify AFTER INSERT OR UPDATE OR DELETE ON regions
    FOR EACH STATEMENT EXECUTE FUNCTION gpb_notify_inventory();

-- A tenant's token, quota or policies changed: brokers drop what they kept of it.
CREATE FUNCTION gpb_notify_tenant() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'tenants' THEN
        PERFORM pg_notify('gpb_tenant', OLD.id::text);
    ELSE
        PERFORM pg_notify('gpb_tenant', coalesce(NEW.tenant_id, OLD.tenant_id)::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tenants_notify AFTER UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION gpb_notify_tenant();
CREATE TRIGGER policies_notify AFTER INSERT OR UPDATE OR DELETE ON policies
    FOR EACH ROW EXECUTE FUNCTION gpb_notify_tenant();

-- A request began to wait: admitters wake, so that a tenant under its fair-share guarantee
-- reclaims borrowed capacity at once (issue 28) rather than at the next interval. Grants
-- insert admitted allocations, which the WHEN clause passes over.
CREATE TRIGGER allocations_notify_pending AFTER INSERT ON allocations
    FOR EACH ROW WHEN (NEW.status = 'pending') EXECUTE FUNCTION gpb_notify_inventory();
