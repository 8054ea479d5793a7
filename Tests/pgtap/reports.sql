-- definitions/reports.sql: lost instances and pools out of stock (migration 17).
BEGIN;
\ir fixtures.psql
SELECT plan(17);

INSERT INTO allocations (id, tenant_id, status, request, replicas, placed_replicas, lease_seconds, lease_expires_at) VALUES
    ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', 'active',
     '{"shape":{"computeClass":"gpu","qos":"default","gpuCount":1,"cpu":4,"memoryGiB":16}}', 3, 3, 3600,
     now() + interval '1 hour');
SELECT count(*) FROM gpb_reserve('00000000-0000-0000-0000-0000000000b1',
                                 ARRAY[ROW('ra', 't4', 3, 0, '{v1,v2,v3}')::gpb_placement], 'test');
-- One more, idle (warm), of an allocation already released.
UPDATE instances SET state = 'idle', idle_since = now() WHERE seq = (SELECT max(seq) FROM instances);
UPDATE pools SET idle = 1 WHERE region_id = 'ra' AND id = 't4';
UPDATE allocations SET placed_replicas = 2 WHERE id = '00000000-0000-0000-0000-0000000000b1';

-- gpb_report_lost
SELECT throws_ok($$SELECT * FROM gpb_report_lost('{}', 'released', '', 'admin')$$, '22023', NULL,
                 'only interrupted or failedToStart');
SELECT is((SELECT count(*) FROM gpb_report_lost(ARRAY(SELECT id FROM instances ORDER BY seq LIMIT 1), 'interrupted',
                                                 'spot reclaim', 'admin')), 1::bigint, 'a running instance is lost');
SELECT is((SELECT state FROM instances ORDER BY seq LIMIT 1), 'interrupted', 'and reads interrupted');
SELECT is((SELECT placed_replicas || ' ' || status FROM allocations), '1 partial', 'its allocation shrinks');
SELECT ok((SELECT decisions->-1->>'reason' FROM allocations) = '1 instance(s) interrupted: spot reclaim', 'and says why');
SELECT is((SELECT allocated FROM pools WHERE region_id = 'ra' AND id = 't4'), 2, 'its pool counts one fewer');
SELECT is((SELECT count(*) FROM gpb_report_lost(ARRAY(SELECT id FROM instances ORDER BY seq LIMIT 1), 'failedToStart',
                                                 '', 'admin')), 0::bigint, 'reported again: nothing more');
SELECT is((SELECT allocation_id FROM gpb_report_lost(ARRAY(SELECT id FROM instances WHERE state = 'idle'), 'failedToStart',
                                                      '', 'admin')), NULL, 'an idle instance is lost for no allocation');
SELECT is((SELECT allocated || '/' || idle FROM pools WHERE region_id = 'ra' AND id = 't4'), '1/0', 'and leaves the idle count');
SELECT is((SELECT sum(delta) FROM ledger WHERE region_id = 'ra' AND pool_id = 't4'), 1::bigint, 'the ledger adds up');

-- gpb_report_out_of_stock, pools_stockout_capacity (gpb_pool_reported_during_stockout), gpb_end_stockouts
SELECT ok(NOT gpb_report_out_of_stock('ra', 'nope', 0, now() + interval '1 hour', 'x', 'r1'), 'an unknown pool: false');
SELECT ok(gpb_report_out_of_stock('ra', 't4', 0, now() + interval '1 hour', 'stock-out', 'r2'), 'a pool out of stock');
SELECT is((SELECT capacity FROM pools WHERE region_id = 'ra' AND id = 't4'), 0, 'offers nothing');
UPDATE pools SET capacity = 7 WHERE region_id = 'ra' AND id = 't4';
SELECT is((SELECT capacity || ' ' || s.restore_capacity FROM pools p JOIN pool_stockouts s ON s.region_id = p.region_id
           AND s.pool_id = p.id), '0 7', 'pools_stockout_capacity (gpb_pool_reported_during_stockout): a report during the cool-down changes what it returns to');
SELECT is(gpb_end_stockouts(), 0, 'nothing ends before its time');
UPDATE pool_stockouts SET until = now();
SELECT is(gpb_end_stockouts(), 1, 'a stock-out ends at its time');
SELECT is((SELECT capacity FROM pools WHERE region_id = 'ra' AND id = 't4'), 7, 'and the pool offers what was reported');
SELECT * FROM finish();
ROLLBACK;
