-- gpubroker schema, version 11: inventory changes in the admin's event feed, and
-- webhook deliveries claimed through an index instead of a scan of everything pending.

-- Region and pool changes as feed events, written by triggers in the changing
-- transaction (an outbox, like the ledger): the admin's feed reads them beside the
-- ledger in the same (xid, seq) order. `seq` comes from the ledger's own sequence, so a
-- position <xid>-<seq> names one event of either table.
CREATE TABLE inventory_events (
    seq       bigint PRIMARY KEY DEFAULT nextval('ledger_seq_seq'),
    xid       bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    type      text NOT NULL CHECK (type IN ('region.created', 'region.changed', 'region.deleted',
                                            'pool.created', 'pool.changed', 'pool.deleted')),
    region_id text NOT NULL,
    pool_id   text,
    -- The row after the change (`current`, absent once deleted) and before it (`previous`).
    data      jsonb NOT NULL
);
CREATE INDEX inventory_events_by_xid ON inventory_events (xid, seq);

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
        'computeClass', p.compute_class, 'qos', to_jsonb(p.qos), 'gpuSeries', p.gpu_series,
        'gpuMemoryGiB', p.gpu_memory_gib, 'gpuCount', p.gpus_per_instance, 'cpu', p.cpu,
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
-- is (the same columns that wake the admitter in migration 6), so the grant path pays
-- this comparison and nothing more.
CREATE TRIGGER pools_event_reported AFTER UPDATE ON pools
    FOR EACH ROW
    WHEN ((OLD.capacity, OLD.compute_class, OLD.qos, OLD.gpu_series, OLD.gpu_memory_gib, OLD.gpus_per_instance,
           OLD.cpu, OLD.memory_gib, OLD.instance_type, OLD.price_per_hour, OLD.defer_scale_in_seconds)
          IS DISTINCT FROM
          (NEW.capacity, NEW.compute_class, NEW.qos, NEW.gpu_series, NEW.gpu_memory_gib, NEW.gpus_per_instance,
           NEW.cpu, NEW.memory_gib, NEW.instance_type, NEW.price_per_hour, NEW.defer_scale_in_seconds))
    EXECUTE FUNCTION gpb_record_inventory_event();

CREATE FUNCTION gpb_inventory_event_json(e inventory_events) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'type', e.type,
        'timestamp', to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'data', e.data || jsonb_strip_nulls(jsonb_build_object(
            'eventId', e.xid || '-' || e.seq, 'seq', e.seq, 'kind', split_part(e.type, '.', 2),
            'region', e.region_id, 'poolId', e.pool_id, 'actor', 'admin',
            'at', to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))))
$$;

-- An endpoint without a tenant is the admin's: it may take every tenant's allocation
-- events and the inventory's.
ALTER TABLE webhook_endpoints ALTER COLUMN tenant_id DROP NOT NULL;

-- Webhook lanes: one row per endpoint and allocation with deliveries pending, due
-- when its oldest pending delivery may be attempted. Claiming takes due lanes from an
-- index and each lane's oldest delivery, so it costs the same with 40,000 deliveries
-- pending as with none, and an allocation's deliveries still go one at a time, in
-- order. `pending` counts the lane's pending deliveries; the lane goes at 0. Dispatch
-- (adding) and attempts (removing) change it under the lane's row lock, so a lane
-- cannot vanish while a delivery of it is still pending.
CREATE TABLE webhook_lanes (
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    -- The nil uuid: the lane of events without an allocation (an admin's inventory events).
    allocation_id   uuid NOT NULL,
    pending         integer NOT NULL CHECK (pending >= 0),
    -- Also a claim: a broker sending the lane's delivery moves it a minute ahead first.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (endpoint_id, allocation_id)
);
CREATE INDEX webhook_lanes_due ON webhook_lanes (next_attempt_at);

CREATE FUNCTION gpb_no_allocation() RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$ SELECT '00000000-0000-0000-0000-000000000000'::uuid $$;

INSERT INTO webhook_lanes (endpoint_id, allocation_id, pending, next_attempt_at)
SELECT endpoint_id, coalesce(allocation_id, gpb_no_allocation()), count(*), min(next_attempt_at) FROM webhook_deliveries
WHERE status = 'pending' GROUP BY 1, 2;

-- Claims go through the lanes now.
DROP INDEX webhook_deliveries_due;

-- Migration 6's gpb_webhook_dispatch (its newest definition), which now also counts
-- each delivery into its lane and gives an admin's endpoint (no tenant) every tenant's
-- allocation events and the inventory's, in feed order.
CREATE OR REPLACE FUNCTION gpb_webhook_dispatch(p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    horizon bigint := gpb_event_horizon();
    e record;
    last_xid bigint;
    last_seq bigint;
    seen integer;
    n integer;
    added integer := 0;
BEGIN
    FOR e IN SELECT * FROM webhook_endpoints WHERE cursor_xid < horizon ORDER BY id FOR UPDATE SKIP LOCKED LOOP
        WITH feed AS (
            SELECT * FROM (
                (SELECT l.xid, l.seq, l, NULL::inventory_events AS i FROM ledger l
                 WHERE l.xid >= e.cursor_xid AND l.xid < horizon AND (l.xid, l.seq) > (e.cursor_xid, e.cursor_seq)
                 ORDER BY l.xid, l.seq LIMIT p_limit)
                UNION ALL
                (SELECT i.xid, i.seq, NULL::ledger, i FROM inventory_events i
                 WHERE e.tenant_id IS NULL
                   AND i.xid >= e.cursor_xid AND i.xid < horizon AND (i.xid, i.seq) > (e.cursor_xid, e.cursor_seq)
                 ORDER BY i.xid, i.seq LIMIT p_limit)
            ) u ORDER BY xid, seq LIMIT p_limit
        ), typed AS (
            SELECT f.*, coalesce('allocation.' || (f.l).kind, (f.i).type) AS type FROM feed f
        ), inserted AS (
            INSERT INTO webhook_deliveries (endpoint_id, message_id, allocation_id, event_type, payload)
            SELECT e.id, 'evt_' || t.xid || '_' || t.seq, (t.l).allocation_id, t.type,
                   CASE WHEN (t.i).seq IS NULL THEN gpb_event_json(t.l) ELSE gpb_inventory_event_json(t.i) END::text
            FROM typed t LEFT JOIN allocations a ON a.id = (t.l).allocation_id
            WHERE (e.tenant_id IS NULL OR a.tenant_id = e.tenant_id)
              AND (cardinality(e.event_types) = 0 OR t.type = ANY (e.event_types))
            ORDER BY t.xid, t.seq
            ON CONFLICT DO NOTHING
            RETURNING allocation_id
        ), lanes AS (
            INSERT INTO webhook_lanes AS w (endpoint_id, allocation_id, pending)
            -- In lane order, the order outcomes lock lanes in.
            SELECT e.id, coalesce(allocation_id, gpb_no_allocation()), count(*) FROM inserted GROUP BY 2 ORDER BY 2
            ON CONFLICT (endpoint_id, allocation_id) DO UPDATE SET pending = w.pending + excluded.pending
        )
        SELECT (SELECT count(*) FROM feed), (SELECT count(*) FROM inserted),
               (SELECT f.xid FROM feed f ORDER BY f.xid DESC, f.seq DESC LIMIT 1),
               (SELECT f.seq FROM feed f ORDER BY f.xid DESC, f.seq DESC LIMIT 1)
        INTO seen, n, last_xid, last_seq;
        -- A short window read everything below the horizon: start the next one there.
        IF seen < p_limit THEN
            last_xid := horizon;
            last_seq := 0;
        END IF;
        UPDATE webhook_endpoints SET cursor_xid = last_xid, cursor_seq = last_seq WHERE id = e.id;
        added := added + n;
    END LOOP;
    RETURN added;
END
$$;

-- Up to p_limit due lanes, each moved a minute ahead (the claim), and each lane's
-- oldest pending delivery with its attempt counted. A loop of key lookups rather than
-- one statement: planned with an unknown limit, the statement joined every lane and
-- every delivery by hash (200 ms with 70,000 lanes). A lane left without a pending
-- delivery is removed.
CREATE FUNCTION gpb_webhook_claim(p_limit integer)
RETURNS TABLE (id bigint, message_id text, payload text, attempts integer, url text, secrets text[], age double precision)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    lane record;
    head bigint;
BEGIN
    FOR lane IN
        SELECT l.endpoint_id, l.allocation_id FROM webhook_lanes l
        WHERE l.next_attempt_at <= now() ORDER BY l.next_attempt_at LIMIT p_limit FOR UPDATE SKIP LOCKED
    LOOP
        IF lane.allocation_id = gpb_no_allocation() THEN
            SELECT d.id INTO head FROM webhook_deliveries d
            WHERE d.endpoint_id = lane.endpoint_id AND d.allocation_id IS NULL AND d.status = 'pending' ORDER BY d.id LIMIT 1;
        ELSE
            SELECT d.id INTO head FROM webhook_deliveries d
            WHERE d.endpoint_id = lane.endpoint_id AND d.allocation_id = lane.allocation_id AND d.status = 'pending'
            ORDER BY d.id LIMIT 1;
        END IF;
        IF head IS NULL THEN
            DELETE FROM webhook_lanes l WHERE l.endpoint_id = lane.endpoint_id AND l.allocation_id = lane.allocation_id;
            CONTINUE;
        END IF;
        UPDATE webhook_lanes l SET next_attempt_at = now() + interval '1 minute'
        WHERE l.endpoint_id = lane.endpoint_id AND l.allocation_id = lane.allocation_id;
        RETURN QUERY
            UPDATE webhook_deliveries d
            SET next_attempt_at = now() + interval '1 minute', attempts = d.attempts + 1, last_attempt_at = now()
            FROM webhook_endpoints e
            WHERE d.id = head AND e.id = d.endpoint_id
            RETURNING d.id, d.message_id, d.payload, d.attempts, e.url,
                      array_remove(ARRAY[e.secret, CASE WHEN e.previous_secret_until > now() THEN e.previous_secret END], NULL),
                      extract(epoch FROM now() - d.created_at)::float8;
    END LOOP;
END
$$;

-- The outcomes still to record: [{"id", "delivered", "status", "error", "retryIn"}] of
-- pending deliveries, with their lanes.
CREATE FUNCTION gpb_webhook_outcomes(p_outcomes jsonb)
RETURNS TABLE (id bigint, delivered boolean, status integer, error text, retry_in double precision, endpoint_id uuid, lane uuid)
LANGUAGE sql STABLE AS $$
    SELECT o.id, o.delivered, o.status, o.error, o."retryIn", d.endpoint_id, coalesce(d.allocation_id, gpb_no_allocation())
    FROM jsonb_to_recordset(p_outcomes) AS o(id bigint, delivered boolean, status integer, error text, "retryIn" double precision)
    JOIN webhook_deliveries d ON d.id = o.id AND d.status = 'pending'
$$;

CREATE FUNCTION gpb_webhook_attempted(p_outcomes jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE webhook_endpoints e SET status = t.status, updated_at = now()
    FROM (SELECT endpoint_id, CASE WHEN bool_or(NOT delivered) THEN 'failing' ELSE 'active' END AS status
          FROM gpb_webhook_outcomes(p_outcomes)
          WHERE delivered OR retry_in IS NULL GROUP BY endpoint_id) t
    WHERE e.id = t.endpoint_id AND e.status <> t.status;
    PERFORM 1 FROM webhook_lanes l
    JOIN gpb_webhook_outcomes(p_outcomes) o ON o.endpoint_id = l.endpoint_id AND o.lane = l.allocation_id
    ORDER BY l.endpoint_id, l.allocation_id FOR UPDATE OF l;

    WITH changed AS (
        UPDATE webhook_deliveries d
        SET status = CASE WHEN o.delivered THEN 'delivered' WHEN o.retry_in IS NULL THEN 'failed' ELSE 'pending' END,
            delivered_at = CASE WHEN o.delivered THEN now() END,
            next_attempt_at = CASE WHEN o.delivered OR o.retry_in IS NULL THEN d.next_attempt_at
                                   ELSE now() + make_interval(secs => o.retry_in) END,
            last_status = o.status, last_error = CASE WHEN o.delivered THEN NULL ELSE o.error END
        FROM gpb_webhook_outcomes(p_outcomes) o WHERE d.id = o.id AND d.status = 'pending'
        RETURNING o.endpoint_id, o.lane, d.status, d.next_attempt_at
    )
    UPDATE webhook_lanes l
    SET pending = l.pending - CASE WHEN c.status = 'pending' THEN 0 ELSE 1 END,
        next_attempt_at = CASE WHEN c.status = 'pending' THEN c.next_attempt_at ELSE now() END
    FROM changed c WHERE l.endpoint_id = c.endpoint_id AND l.allocation_id = c.lane;
    DELETE FROM webhook_lanes l USING jsonb_to_recordset(p_outcomes) AS o(id bigint), webhook_deliveries d
    WHERE d.id = o.id AND l.endpoint_id = d.endpoint_id AND l.allocation_id = coalesce(d.allocation_id, gpb_no_allocation())
      AND l.pending = 0;
END
$$;
