-- The event feed: the ledger and inventory_events read in (xid, seq) order up to the
-- horizon, and their rows as event bodies.

-- Everything below it is final; to be called as a transaction's first statement.
CREATE FUNCTION gpb_event_horizon() RETURNS bigint
LANGUAGE sql STABLE AS $$ SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint $$;

-- A ledger row as an event body (the Standard Webhooks payload shape). A preempted or
-- preempting row's actor names the preemptor's tenant and allocation: the victim's body
-- says 'preemption' instead, as GET /v1/allocations/{id}/events does (issue 31, D3); the
-- ledger keeps it. A preempting row says when its instance stops (`deadline`).
CREATE FUNCTION gpb_event_json(l ledger) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'type', 'allocation.' || l.kind,
        'timestamp', to_char(l.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'data', jsonb_strip_nulls(jsonb_build_object(
            'eventId', l.xid || '-' || l.seq, 'seq', l.seq, 'kind', l.kind, 'allocationId', l.allocation_id,
            'region', l.region_id, 'poolId', l.pool_id, 'instanceId', l.instance_id, 'delta', l.delta,
            'actor', CASE WHEN l.kind IN ('preempted', 'preempting') THEN 'preemption' ELSE l.actor END,
            'at', to_char(l.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
            'deadline', to_char(l.deadline AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))))
$$;

-- An inventory_events row as an event body.
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
