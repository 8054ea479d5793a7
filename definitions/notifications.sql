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

-- Two triggers, so that a grant's UPDATE (allocated, updated_at) passes the second over:
-- PostgreSQL prepares a trigger's WHEN clause once per statement that may fire it, and
-- skips a trigger with a column list when the UPDATE sets none of its columns.
CREATE TRIGGER pools_notify_freed AFTER UPDATE OF allocated, idle ON pools
    FOR EACH ROW
    WHEN (NEW.allocated < OLD.allocated OR NEW.idle > OLD.idle)
    EXECUTE FUNCTION gpb_notify_inventory();
CREATE TRIGGER pools_notify_changed AFTER UPDATE OF capacity, compute_class, qos, gpu_series, gpu_memory_gib,
        gpus_per_instance, cpu, memory_gib, instance_type, price_per_hour, defer_scale_in_seconds, gpu_vendor,
        gpu_partitions, gpu_interconnect ON pools
    FOR EACH ROW
    WHEN ((OLD.capacity, OLD.compute_class, OLD.qos, OLD.gpu_series, OLD.gpu_memory_gib, OLD.gpus_per_instance,
           OLD.cpu, OLD.memory_gib, OLD.instance_type, OLD.price_per_hour, OLD.defer_scale_in_seconds,
           OLD.gpu_vendor, OLD.gpu_partitions, OLD.gpu_interconnect)
          IS DISTINCT FROM
          (NEW.capacity, NEW.compute_class, NEW.qos, NEW.gpu_series, NEW.gpu_memory_gib, NEW.gpus_per_instance,
           NEW.cpu, NEW.memory_gib, NEW.instance_type, NEW.price_per_hour, NEW.defer_scale_in_seconds,
           NEW.gpu_vendor, NEW.gpu_partitions, NEW.gpu_interconnect))
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
