-- definitions/events.sql: the feed's horizon and event bodies.
BEGIN;
\ir fixtures.psql
SELECT plan(4);
SELECT ok(gpb_event_horizon() <= pg_current_xact_id()::text::bigint, 'the horizon is at or below this transaction');
INSERT INTO ledger (xid, at, kind, region_id, pool_id, allocation_id, delta, actor)
VALUES (42, '2026-12-01 10:00:00.5Z', 'reserved', 'ra', 't4', NULL, 1, 'tenant:x');
SELECT is(gpb_event_json((SELECT l FROM ledger l)) - 'data',
          '{"type": "allocation.reserved", "timestamp": "2026-12-01T10:00:00.500Z"}', 'a ledger row''s event type and time');
SELECT is((gpb_event_json((SELECT l FROM ledger l))->'data') - 'seq',
          jsonb_build_object('eventId', '42-' || (SELECT seq FROM ledger), 'kind', 'reserved', 'region', 'ra', 'poolId', 't4',
                             'delta', 1, 'actor', 'tenant:x', 'at', '2026-12-01T10:00:00.500Z'),
          'its data, nulls left out');
SELECT is((gpb_inventory_event_json((SELECT e FROM inventory_events e WHERE pool_id = 'g8'))->'data') - 'seq' - 'eventId' - 'at' - 'current',
          '{"kind": "created", "region": "ra", "poolId": "g8", "actor": "admin"}', 'an inventory event''s data');
SELECT * FROM finish();
ROLLBACK;
