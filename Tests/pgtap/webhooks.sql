-- definitions/webhooks.sql: feed events into deliveries, lanes, claims and outcomes.
BEGIN;
\ir fixtures.psql
SELECT plan(9);
SELECT is(gpb_no_allocation(), '00000000-0000-0000-0000-000000000000'::uuid, 'the lane of events without an allocation');
INSERT INTO allocations (id, tenant_id, status, request, replicas, placed_replicas, lease_seconds, lease_expires_at)
VALUES ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', 'active', '{}', 1, 1, 60, now() + interval '1 minute');
INSERT INTO webhook_endpoints (id, tenant_id, url, event_types, secret, cursor_xid) VALUES
    ('00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000a1', 'http://x', '{allocation.reserved}', 'whsec_a', 1),
    ('00000000-0000-0000-0000-0000000000e2', NULL, 'http://y', '{}', 'whsec_b', 1);
-- Final (below the horizon): written by "transactions" 5 and 6.
INSERT INTO ledger (xid, kind, region_id, pool_id, allocation_id, delta, actor) VALUES
    (5, 'reserved', 'ra', 't4', '00000000-0000-0000-0000-0000000000b1', 1, 't'),
    (6, 'renewed', 'ra', 't4', '00000000-0000-0000-0000-0000000000b1', 0, 't');
UPDATE inventory_events SET xid = 4;
SELECT is(gpb_webhook_dispatch(100), 1 + 2 + 5, 'the tenant''s endpoint takes its wanted type; the admin''s everything');
SELECT is((SELECT pending FROM webhook_lanes WHERE endpoint_id = '00000000-0000-0000-0000-0000000000e2' AND allocation_id = gpb_no_allocation()),
          5, 'inventory events share the lane without an allocation');
SELECT is(gpb_webhook_dispatch(100), 0, 'a second dispatch adds nothing (cursors moved)');
SELECT is((SELECT count(*) FROM gpb_webhook_claim(10)), 3::bigint, 'one claim per due lane (its oldest delivery)');
SELECT is((SELECT count(*) FROM gpb_webhook_claim(10)), 0::bigint, 'claimed lanes wait a minute');
SELECT is((SELECT count(*) FROM gpb_webhook_outcomes(
              jsonb_build_array(jsonb_build_object('id', (SELECT min(id) FROM webhook_deliveries), 'delivered', true, 'status', 200)))),
          1::bigint, 'gpb_webhook_outcomes: outcomes of pending deliveries, with their lanes');
SELECT gpb_webhook_attempted(jsonb_agg(jsonb_build_object('id', id, 'delivered', false, 'status', 500, 'error', 'x', 'retryIn', NULL)))
FROM webhook_deliveries WHERE endpoint_id = '00000000-0000-0000-0000-0000000000e1';
SELECT is((SELECT status FROM webhook_endpoints WHERE id = '00000000-0000-0000-0000-0000000000e1'), 'failing',
          'out of retries: the delivery fails and the endpoint is failing');
SELECT is((SELECT count(*) FROM webhook_lanes WHERE endpoint_id = '00000000-0000-0000-0000-0000000000e1'), 0::bigint,
          'and its emptied lane goes');
SELECT * FROM finish();
ROLLBACK;
