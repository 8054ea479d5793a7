-- Webhook deliveries: feed events turned into deliveries per endpoint, queued in lanes
-- (one per endpoint and allocation, so an allocation's deliveries go one at a time, in
-- order), claimed through an index and their outcomes recorded.

-- The lane of events without an allocation (an admin's inventory events).
CREATE FUNCTION gpb_no_allocation() RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$ SELECT '00000000-0000-0000-0000-000000000000'::uuid $$;

-- Turns feed events into deliveries for every endpoint no other broker is at: its
-- tenant's allocations' events of the types it wants (an admin's endpoint, without a
-- tenant: every tenant's and the inventory's), from its cursor up to the horizon, at
-- most p_limit events per endpoint, each counted into its lane. Returns the deliveries
-- added. An endpoint's row is written only when its window saw events, and a call returns
-- at once when no event follows the oldest cursor: moving every cursor to the horizon on
-- every call (about three a second) took PostgreSQL to 39 % of a core with 2,000 idle
-- endpoints (issue 31, N5).
CREATE FUNCTION gpb_webhook_dispatch(p_limit integer) RETURNS integer
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
