-- Issue 31: what idle webhook endpoints cost. gpb_webhook_dispatch moved every endpoint's
-- cursor to the feed's horizon on every call (about three a second), and the horizon
-- moves with any transaction: 2,000 endpoints and no events took PostgreSQL from 0.5 % to
-- 39 % of a core. An endpoint's row is now written only when its window saw events,
-- and a call returns at once when no event follows the oldest cursor.
--
-- Functions (to move into the functions file of the new layout):

-- Migration 11's gpb_webhook_dispatch, with the two changes above.
CREATE OR REPLACE FUNCTION gpb_webhook_dispatch(p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    horizon bigint := gpb_event_horizon();
    e record;
    oldest record;
    last_xid bigint;
    last_seq bigint;
    seen integer;
    n integer;
    added integer := 0;
BEGIN
    SELECT cursor_xid, cursor_seq INTO oldest FROM webhook_endpoints ORDER BY cursor_xid, cursor_seq LIMIT 1;
    IF NOT FOUND
       OR NOT EXISTS (SELECT 1 FROM ledger l WHERE l.xid >= oldest.cursor_xid AND l.xid < horizon
                        AND (l.xid, l.seq) > (oldest.cursor_xid, oldest.cursor_seq))
          AND NOT EXISTS (SELECT 1 FROM inventory_events i WHERE i.xid >= oldest.cursor_xid AND i.xid < horizon
                            AND (i.xid, i.seq) > (oldest.cursor_xid, oldest.cursor_seq)) THEN
        RETURN 0;
    END IF;
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
        -- Nothing new for it: its row stays as it is (the cursor is still exact).
        CONTINUE WHEN seen = 0;
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

-- Issue 31, D3: the preempted tenant saw the preemptor's tenant and allocation ids in
-- its feed, streams and webhook bodies (the preempted row's actor names them). The event
-- body says 'preemption' instead, as GET /v1/allocations/{id}/events does; the ledger
-- keeps the actor.
CREATE OR REPLACE FUNCTION gpb_event_json(l ledger) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'type', 'allocation.' || l.kind,
        'timestamp', to_char(l.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'data', jsonb_strip_nulls(jsonb_build_object(
            'eventId', l.xid || '-' || l.seq, 'seq', l.seq, 'kind', l.kind, 'allocationId', l.allocation_id,
            'region', l.region_id, 'poolId', l.pool_id, 'instanceId', l.instance_id, 'delta', l.delta,
            'actor', CASE WHEN l.kind = 'preempted' THEN 'preemption' ELSE l.actor END,
            'at', to_char(l.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))))
$$;
