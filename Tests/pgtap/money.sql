-- definitions/money.sql: price history and charged intervals.
BEGIN;
\ir fixtures.psql
SELECT plan(6);
-- Each trigger runs its function.
SELECT trigger_is('pools', 'pools_price_created', 'gpb_record_price');
SELECT trigger_is('pools', 'pools_price_changed', 'gpb_record_price');
-- pools_price_created, pools_price_changed (gpb_record_price)
SELECT is((SELECT count(*) FROM pool_prices), 3::bigint, 'every new pool records its price');
UPDATE pools SET capacity = 20 WHERE region_id = 'ra' AND id = 't4';
SELECT is((SELECT count(*) FROM pool_prices), 3::bigint, 'a change that keeps the price records none');
SELECT pg_sleep(0.001);
UPDATE pools SET price_per_hour = 4 WHERE region_id = 'ra' AND id = 't4';
SELECT is((SELECT array_agg(price_per_hour ORDER BY effective_from) FROM pool_prices WHERE region_id = 'ra' AND pool_id = 't4'),
          '{2,4}'::double precision[], 'a new price is recorded after the old');
-- gpb_charged_intervals: an instance reserved for two hours at 4/h, until released.
DELETE FROM pool_prices;
INSERT INTO pool_prices VALUES ('ra', 't4', '-infinity', 4);
INSERT INTO allocations (id, tenant_id, status, request, replicas, placed_replicas, lease_seconds, lease_expires_at)
VALUES ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', 'released', '{"shape":{"qos":"default"}}', 1, 0, 60, NULL);
INSERT INTO instances (id, allocation_id, region_id, pool_id, instance_type, gpu_series, gpu_count, cpu, memory_gib, vpc_id,
                       vswitch_id, security_group_id, state)
VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000b1', 'ra', 't4', 'x', 'T4', 1, 4, 16, 'v', 's', 'g', 'released');
INSERT INTO ledger (at, kind, region_id, pool_id, allocation_id, instance_id, delta, actor) VALUES
    ('2026-03-01 22:00Z', 'reserved', 'ra', 't4', '00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000c1', 1, 't'),
    ('2026-03-02 00:00Z', 'released', 'ra', 't4', '00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000c1', -1, 't');
SELECT results_eq($$SELECT day, seconds, cost FROM gpb_charged_intervals('2026-03-01Z', '2026-03-03Z', NULL) ORDER BY day$$,
                  $$VALUES ('2026-03-01'::date, 7200::numeric, 8::double precision)$$,
                  'two hours at 4/h, in the day they started (UTC), up to the release');
SELECT * FROM finish();
ROLLBACK;
