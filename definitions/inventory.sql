-- The inventory read by changes, and its changes as feed events.

-- The writing transaction's id (xid8 as bigint) on every region and pool row, as the
-- ledger's `xid`. A reader that saw the rows as of a snapshot with xmin X has seen every
-- change of a transaction below X, so "changed_xid >= X" is all it must read next time.
-- Set by trigger, so no writer can forget it.

CREATE FUNCTION gpb_mark_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.changed_xid := pg_current_xact_id()::text::bigint;
    RETURN NEW;
END
$$;

-- Only when the row does not carry the id yet: the grant's counter UPDATE writes it
-- itself (gpb_grant_batch, gpb_reserve), so a batch over ten pools calls no function per
-- pool, and whatever a writer leaves or puts there, the row ends up with the right id.
CREATE TRIGGER regions_mark_changed BEFORE INSERT OR UPDATE ON regions
    FOR EACH ROW WHEN (NEW.changed_xid IS DISTINCT FROM pg_current_xact_id()::text::bigint)
    EXECUTE FUNCTION gpb_mark_changed();
CREATE TRIGGER pools_mark_changed BEFORE INSERT OR UPDATE ON pools
    FOR EACH ROW WHEN (NEW.changed_xid IS DISTINCT FROM pg_current_xact_id()::text::bigint)
    EXECUTE FUNCTION gpb_mark_changed();

-- A removed row leaves nothing to read: removals are counted instead, in the same
-- transaction, and a reader that sees the count move reads everything afresh.
CREATE FUNCTION gpb_count_removal() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE inventory_removals SET removals = removals + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER regions_count_removal AFTER DELETE ON regions
    FOR EACH STATEMENT EXECUTE FUNCTION gpb_count_removal();
CREATE TRIGGER pools_count_removal AFTER DELETE ON pools
    FOR EACH STATEMENT EXECUTE FUNCTION gpb_count_removal();

-- Region and pool changes as feed events (inventory_events), written in the changing
-- transaction (an outbox, like the ledger), with the row after the change (`current`,
-- absent once deleted) and before it (`previous`). These two functions are the one place
-- these bodies are written: their members are the API's names for the same fields
-- (openapi.yaml InventoryRegionState and InventoryPoolState, checked by EventAPITests).
CREATE FUNCTION gpb_region_json(r regions) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'displayName', r.display_name, 'kind', r.kind, 'primary', r.is_primary, 'vpcId', r.vpc_id,
        'vSwitchIds', to_jsonb(r.vswitch_ids), 'securityGroupId', r.security_group_id, 'labels', r.labels,
        'state', r.state))
$$;

CREATE FUNCTION gpb_pool_json(p pools) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'computeClass', p.compute_class, 'qos', to_jsonb(p.qos), 'gpuSeries', p.gpu_series, 'gpuVendor', p.gpu_vendor,
        'gpuMemoryGiB', p.gpu_memory_gib, 'gpusPerInstance', p.gpus_per_instance,
        -- As in PoolView: the accelerator lists only for a GPU pool (a CPU pool's are empty).
        'gpuPartitions', CASE WHEN p.compute_class = 'gpu' THEN to_jsonb(p.gpu_partitions) END,
        'gpuInterconnect', CASE WHEN p.compute_class = 'gpu' THEN to_jsonb(p.gpu_interconnect) END, 'cpu', p.cpu,
        'memoryGiB', p.memory_gib, 'instanceType', p.instance_type, 'capacity', p.capacity,
        'allocated', p.allocated, 'idle', p.idle, 'pricePerHour', p.price_per_hour,
        'deferScaleInSeconds', p.defer_scale_in_seconds))
$$;

CREATE FUNCTION gpb_record_inventory_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    verb text := CASE TG_OP WHEN 'INSERT' THEN 'created' WHEN 'UPDATE' THEN 'changed' ELSE 'deleted' END;
BEGIN
    IF TG_TABLE_NAME = 'regions' THEN
        INSERT INTO inventory_events (type, region_id, data)
        VALUES ('region.' || verb, coalesce(NEW.id, OLD.id), jsonb_strip_nulls(jsonb_build_object(
            'current', CASE WHEN TG_OP <> 'DELETE' THEN gpb_region_json(NEW) END,
            'previous', CASE WHEN TG_OP <> 'INSERT' THEN gpb_region_json(OLD) END)));
    ELSE
        -- A report wakes the brokers too (notifications.sql notifies the other changes):
        -- one trigger, one column list and WHEN, for both.
        IF TG_OP = 'UPDATE' THEN
            PERFORM pg_notify('gpb_inventory', '');
        END IF;
        INSERT INTO inventory_events (type, region_id, pool_id, data)
        VALUES ('pool.' || verb, coalesce(NEW.region_id, OLD.region_id), coalesce(NEW.id, OLD.id), jsonb_strip_nulls(jsonb_build_object(
            'current', CASE WHEN TG_OP <> 'DELETE' THEN gpb_pool_json(NEW) END,
            'previous', CASE WHEN TG_OP <> 'INSERT' THEN gpb_pool_json(OLD) END)));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER regions_event AFTER INSERT OR UPDATE OR DELETE ON regions
    FOR EACH ROW EXECUTE FUNCTION gpb_record_inventory_event();
CREATE TRIGGER pools_event_added AFTER INSERT OR DELETE ON pools
    FOR EACH ROW EXECUTE FUNCTION gpb_record_inventory_event();
-- Grants and releases move only the counters: a report is a change of what the pool
-- is, an event and a notification (a column list, so that a grant's UPDATE passes the
-- trigger over without preparing its WHEN).
CREATE TRIGGER pools_event_reported AFTER UPDATE OF capacity, compute_class, qos, gpu_series, gpu_memory_gib,
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
    EXECUTE FUNCTION gpb_record_inventory_event();
