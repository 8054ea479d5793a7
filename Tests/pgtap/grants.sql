-- definitions/grants.sql: the grant path.
BEGIN;
\ir fixtures.psql
SELECT plan(24);

-- gpb_tenant_policies, gpb_tenant_unchanged
SELECT is(gpb_tenant_policies('00000000-0000-0000-0000-0000000000a1'), '[]'::jsonb, 'no policies: an empty array');
INSERT INTO policies (tenant_id, name, selector, policy) VALUES
    ('00000000-0000-0000-0000-0000000000a1', 'b', '{}', '{"units": []}'), ('00000000-0000-0000-0000-0000000000a1', 'a', '{}', '{}');
SELECT is(jsonb_path_query_array(gpb_tenant_policies('00000000-0000-0000-0000-0000000000a1'), '$[*].name'), '["a", "b"]',
          'policies in name order');
SELECT ok(gpb_tenant_unchanged('00000000-0000-0000-0000-0000000000a1', md5(gpb_tenant_policies('00000000-0000-0000-0000-0000000000a1')::text)),
          'unchanged with the md5 of its policies');
SELECT ok(NOT gpb_tenant_unchanged('00000000-0000-0000-0000-0000000000a1', md5('[]')), 'changed once a policy is added');
DELETE FROM policies;

-- gpb_grants_complete: a missing member is refused, not read as nothing.
SELECT ok(gpb_grants_complete(ARRAY[t_grant('00000000-0000-0000-0000-0000000000a1', 'ra', 't4', 2)]), 'a planned grant is complete');
SELECT ok(NOT gpb_grants_complete(ARRAY[(SELECT g FROM (SELECT (t_grant('00000000-0000-0000-0000-0000000000a1', 'ra', 't4', 1)).*) AS x,
                                  LATERAL (SELECT ROW(x.allocation_id, x.tenant_id, x.status, x.request, x.replicas, NULL,
                                                      x.labels, x.decisions, x.lease_seconds, x.max_price_per_hour, x.placements,
                                                      x.actor, x.policies)::gpb_planned_grant AS g) AS y)]),
          'placed_replicas missing: incomplete');
SELECT ok(NOT gpb_grants_complete(ARRAY[jsonb_populate_record(NULL::gpb_planned_grant,
              jsonb_set(to_jsonb(t_grant('00000000-0000-0000-0000-0000000000a1', 'ra', 't4', 2)), '{placements,0,vswitches}', '["one"]'))]),
          'fewer vSwitches than instances: incomplete');

-- gpb_reserve: new capacity, idle reuse first, GB001 when short or cordoned.
INSERT INTO allocations (id, tenant_id, status, request, replicas, placed_replicas, lease_seconds, lease_expires_at)
VALUES ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', 'active',
        '{"shape":{"computeClass":"gpu","gpuCount":1,"cpu":4,"memoryGiB":16}}', 3, 3, 60, now() + interval '1 minute');
SELECT is((SELECT count(*) FROM gpb_reserve('00000000-0000-0000-0000-0000000000b1',
                                            ARRAY[ROW('ra', 't4', 3, 0, '{v1,v2,v3}')::gpb_placement], 'test')), 3::bigint,
          'gpb_reserve returns the instances');
SELECT is((SELECT allocated FROM pools WHERE region_id = 'ra' AND id = 't4'), 3, 'and counts them on the pool');
SELECT is((SELECT array_agg(vswitch_id ORDER BY seq) FROM instances), '{v1,v2,v3}', 'one vSwitch each, in order');
SELECT throws_ok($$SELECT * FROM gpb_reserve('00000000-0000-0000-0000-0000000000b1', ARRAY[ROW('ra', 't4', 8, 0, array_fill('v'::text, ARRAY[8]))::gpb_placement], 'test')$$,
                 'GB001', NULL, 'GB001 when the pool is short');
UPDATE instances SET state = 'idle', idle_since = now() WHERE seq = (SELECT min(seq) FROM instances);
UPDATE pools SET idle = 1 WHERE region_id = 'ra' AND id = 't4';
SELECT is((SELECT count(*) FILTER (WHERE reused) FROM gpb_reserve('00000000-0000-0000-0000-0000000000b1',
                                            ARRAY[ROW('ra', 't4', 2, 0, '{v1,v2}')::gpb_placement], 'test')), 1::bigint,
          'an idle instance is reused before new capacity');
UPDATE regions SET state = 'cordoned' WHERE id = 'rb';
SELECT throws_ok($$SELECT * FROM gpb_reserve('00000000-0000-0000-0000-0000000000b1', ARRAY[ROW('rb', 't4', 1, 0, '{v}')::gpb_placement], 'test')$$,
                 'GB001', NULL, 'GB001 in a cordoned region');
UPDATE regions SET state = 'active' WHERE id = 'rb';

-- gpb_grant: the allocation and its reservation; incomplete input refused.
SELECT is((SELECT count(*) FROM gpb_grant(t_grant('00000000-0000-0000-0000-0000000000a1', 'rb', 't4', 2))), 2::bigint,
          'gpb_grant reserves its placements');
SELECT is((SELECT count(*) FROM allocations WHERE lease_expires_at = now() + interval '1 hour'), 1::bigint,
          'its allocation leases from the transaction''s time');
SELECT throws_ok($$SELECT * FROM gpb_grant(jsonb_populate_record(NULL::gpb_planned_grant, '{"tenant_id": "00000000-0000-0000-0000-0000000000a1"}'))$$,
                 '22023', NULL, 'an incomplete grant is refused with 22023');

-- gpb_grant_costs: price caps and budgets.
SELECT results_eq($$SELECT n, over_cap, problem IS NOT NULL FROM gpb_grant_costs(ARRAY[
                       t_grant('00000000-0000-0000-0000-0000000000a1', 'ra', 't4', 1, 1.5),
                       t_grant('00000000-0000-0000-0000-0000000000a1', 'ra', 't4', 1, 2.5)]) ORDER BY n$$,
                  $$VALUES (1::bigint, true, false), (2::bigint, false, false)$$, 'a pool priced above the cap is over it');
SELECT is((SELECT problem->>'budget' FROM gpb_grant_costs(ARRAY[
              t_grant('00000000-0000-0000-0000-0000000000a3', 'ra', 't4', 1, NULL, 86400),
              t_grant('00000000-0000-0000-0000-0000000000a3', 'ra', 't4', 2, NULL, 86400)]) WHERE n = 2),
          'spendPerMonth', 'the second grant passes the budget, counting the first');

-- gpb_grant_batch: each check in sequence.
SELECT is((SELECT count(DISTINCT allocation_id) FROM gpb_grant_batch(ARRAY[
              t_grant('00000000-0000-0000-0000-0000000000a1', 'ra', 'g8', 1),
              t_grant('00000000-0000-0000-0000-0000000000a1', 'rb', 't4', 9),
              t_grant('00000000-0000-0000-0000-0000000000a1', 'ra', 't4', 1)])), 2::bigint,
          'a grant that does not fit is left out, the others land');
SELECT is((SELECT count(DISTINCT allocation_id) FROM gpb_grant_batch(ARRAY[
              t_grant('00000000-0000-0000-0000-0000000000a2', 'ra', 'g8', 2),
              t_grant('00000000-0000-0000-0000-0000000000a2', 'ra', 'g8', 2)])), 1::bigint,
          'quota gpus 3: the second grant, counting the first, is left out');
SELECT is((SELECT count(*) FROM gpb_grant_batch(ARRAY[t_grant('00000000-0000-0000-0000-0000000000a1', 'ra', 'g8', 1, 0.1)])),
          0::bigint, 'a grant over its price cap is left out');
SELECT is((SELECT count(*) FROM gpb_grant_batch(ARRAY[t_grant('00000000-0000-0000-0000-0000000000a3', 'ra', 'g8', 1, NULL, 86400 * 300)])),
          0::bigint, 'a grant over its tenant''s budget is left out');
SELECT throws_ok($$SELECT * FROM gpb_grant_batch(ARRAY[jsonb_populate_record(NULL::gpb_planned_grant, '{"actor": "x"}')])$$,
                 '22023', NULL, 'an incomplete grant fails the batch with 22023');
UPDATE instances SET state = 'idle', idle_since = now() WHERE region_id = 'ra' AND pool_id = 'g8' AND seq = (
    SELECT min(seq) FROM instances WHERE region_id = 'ra' AND pool_id = 'g8');
UPDATE pools SET idle = 1 WHERE region_id = 'ra' AND id = 'g8';
SELECT is((SELECT count(*) FILTER (WHERE reused) FROM gpb_grant_batch(ARRAY[
              t_grant('00000000-0000-0000-0000-0000000000a1', 'ra', 'g8', 1),
              t_grant('00000000-0000-0000-0000-0000000000a1', 'ra', 't4', 99)])), 1::bigint,
          'with idle instances each grant runs alone: one reuses, the one too big is left out');

SELECT * FROM finish();
ROLLBACK;
