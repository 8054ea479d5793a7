-- gpubroker schema, version 6: events out. Notifications that wake every broker
-- (LISTEN/NOTIFY), a position in the ledger that readers can follow in commit-safe
-- order, and webhook endpoints with their deliveries.

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
CREATE TRIGGER pools_notify_changed AFTER UPDATE ON pools
    FOR EACH ROW
    WHEN (NEW.allocated < OLD.allocated OR NEW.idle > OLD.idle
          OR (OLD.capacity, OLD.compute_class, OLD.qos, OLD.gpu_series, OLD.gpu_memory_gib, OLD.gpus_per_instance,
              OLD.cpu, OLD.memory_gib, OLD.instance_type, OLD.price_per_hour, OLD.defer_scale_in_seconds)
             IS DISTINCT FROM
             (NEW.capacity, NEW.compute_class, NEW.qos, NEW.gpu_series, NEW.gpu_memory_gib, NEW.gpus_per_instance,
              NEW.cpu, NEW.memory_gib, NEW.instance_type, NEW.price_per_hour, NEW.defer_scale_in_seconds))
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

-- The ledger as a feed. Each row records the writing transaction's id (xid8 as
-- bigint, so that a BRIN index can follow it). Rows of transactions below the
-- oldest transaction still running (`pg_snapshot_xmin`) are final: committed and
-- visible, or gone for good. A reader that takes rows in (xid, seq) order up to that
-- horizon is never passed by a row committing later, so a position (xid, seq) is a
-- cursor without gaps or repeats, also across brokers and restarts. The grant path
-- writes nothing more than the column. Rows written before version 6 have no xid and
-- are not followed.
ALTER TABLE ledger ADD COLUMN xid bigint;
ALTER TABLE ledger ALTER COLUMN xid SET DEFAULT pg_current_xact_id()::text::bigint;
CREATE INDEX ledger_by_xid ON ledger USING brin (xid);

-- Everything below it is final; to be called as a transaction's first statement.
CREATE FUNCTION gpb_event_horizon() RETURNS bigint
LANGUAGE sql STABLE AS $$ SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint $$;

-- A ledger row as an event body (the Standard Webhooks payload shape).
CREATE FUNCTION gpb_event_json(l ledger) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'type', 'allocation.' || l.kind,
        'timestamp', to_char(l.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'data', jsonb_strip_nulls(jsonb_build_object(
            'eventId', l.xid || '-' || l.seq, 'seq', l.seq, 'kind', l.kind, 'allocationId', l.allocation_id,
            'region', l.region_id, 'poolId', l.pool_id, 'instanceId', l.instance_id, 'delta', l.delta,
            'actor', l.actor, 'at', to_char(l.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))))
$$;

CREATE TABLE webhook_endpoints (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    url         text NOT NULL CHECK (url ~ '^https?://'),
    -- Empty: every type.
    event_types text[] NOT NULL DEFAULT '{}',
    -- "whsec_" + base64 of 32 random bytes; kept in clear because it signs. The
    -- previous one also signs for a day after a rotation, as Standard Webhooks allows.
    secret                   text NOT NULL CHECK (secret LIKE 'whsec\_%'),
    previous_secret          text,
    previous_secret_until    timestamptz,
    -- failing: a delivery ran out of retries; active again after the next success.
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'failing')),
    -- The feed position up to which events became deliveries.
    cursor_xid  bigint NOT NULL,
    cursor_seq  bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (tenant_id, created_at);

CREATE TABLE webhook_deliveries (
    id              bigserial PRIMARY KEY,
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    -- webhook-id: the same on every attempt.
    message_id      text NOT NULL,
    allocation_id   uuid,
    event_type      text NOT NULL,
    -- The body exactly as signed and sent.
    payload         text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- Also a claim: a broker sending it moves it a minute ahead first.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    last_status     integer,
    last_error      text,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, message_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- Per allocation, one delivery at a time and in order.
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (endpoint_id, allocation_id, id) WHERE status = 'pending';

-- Turns feed events into deliveries for every endpoint no other broker is at: its
-- tenant's allocations' events of the types it wants, from its cursor up to the
-- horizon, at most p_limit ledger rows per endpoint. Returns the deliveries added.
CREATE FUNCTION gpb_webhook_dispatch(p_limit integer) RETURNS integer
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
            SELECT l FROM ledger l
            WHERE l.xid >= e.cursor_xid AND l.xid < horizon AND (l.xid, l.seq) > (e.cursor_xid, e.cursor_seq)
            ORDER BY l.xid, l.seq LIMIT p_limit
        ), inserted AS (
            INSERT INTO webhook_deliveries (endpoint_id, message_id, allocation_id, event_type, payload)
            SELECT e.id, 'evt_' || (f.l).xid || '_' || (f.l).seq, (f.l).allocation_id, 'allocation.' || (f.l).kind,
                   gpb_event_json(f.l)::text
            FROM feed f JOIN allocations a ON a.id = (f.l).allocation_id
            WHERE a.tenant_id = e.tenant_id
              AND (cardinality(e.event_types) = 0 OR 'allocation.' || (f.l).kind = ANY (e.event_types))
            ORDER BY (f.l).xid, (f.l).seq
            ON CONFLICT DO NOTHING
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM feed), (SELECT count(*) FROM inserted),
               (SELECT (f.l).xid FROM feed f ORDER BY (f.l).xid DESC, (f.l).seq DESC LIMIT 1),
               (SELECT (f.l).seq FROM feed f ORDER BY (f.l).xid DESC, (f.l).seq DESC LIMIT 1)
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
