-- definitions/usage.sql: tenants' usage counters and quotas.
BEGIN;
\ir fixtures.psql
SELECT plan(19);
-- Each trigger runs its function.
SELECT trigger_is('tenants', 'tenants_usage_row', 'gpb_tenant_created');
SELECT trigger_is('tenant_usage', 'tenant_usage_within_quota', 'gpb_enforce_quota');
SELECT trigger_is('instances', 'instances_usage_insert', 'gpb_instances_changed');
SELECT trigger_is('instances', 'instances_usage_update', 'gpb_instances_changed');
SELECT trigger_is('instances', 'instances_usage_delete', 'gpb_instances_changed');
-- gpb_usage_of, gpb_quota_problem, gpb_has_quota_limits
SELECT is(gpb_usage_of('00000000-0000-0000-0000-0000000000a1', '{"shape":{"gpuCount":2,"cpu":4,"memoryGiB":8.5}}', 3),
          ROW('00000000-0000-0000-0000-0000000000a1', 3, 6, 12, 25.5)::tenant_usage, 'usage of 3 replicas');
SELECT is((gpb_usage_of('00000000-0000-0000-0000-0000000000a1', '{"shape":{"cpu":1,"memoryGiB":1}}', 2)).gpus, 0,
          'no gpuCount: no GPUs');
SELECT is(gpb_quota_problem('{"gpus": 4}', ROW(NULL, 1, 3, 4, 8)::tenant_usage, ROW(NULL, 1, 2, 4, 8)::tenant_usage),
          'quota gpus: 3 in use + 2 requested exceeds the limit of 4', 'the limit passed, as the client reads it');
SELECT is(gpb_quota_problem('{"gpus": 2}', ROW(NULL, 1, 3, 4, 8)::tenant_usage, ROW(NULL, 1, 0, 4, 8)::tenant_usage),
          NULL, 'adding no GPUs is not refused over a lowered GPU quota');
SELECT ok(gpb_has_quota_limits('{"cpu": 1}') AND NOT gpb_has_quota_limits('{"spendPerMonth": 1}'),
          'budgets are not quota limits');
-- tenants_usage_row (gpb_tenant_created)
INSERT INTO tenants (id, name, token_hash) VALUES ('00000000-0000-0000-0000-0000000000a4', 'new', '\x04');
SELECT is((SELECT instances FROM tenant_usage WHERE tenant_id = '00000000-0000-0000-0000-0000000000a4'), 0,
          'a new tenant has its counters row');
-- instances_usage_insert/update/delete (gpb_instances_changed, gpb_count_usage, gpb_add_usage)
INSERT INTO allocations (id, tenant_id, status, request, replicas, placed_replicas, lease_seconds, lease_expires_at)
VALUES ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', 'active',
        '{"shape":{"gpuCount":1,"cpu":4,"memoryGiB":16}}', 2, 2, 60, now() + interval '1 minute');
INSERT INTO instances (id, allocation_id, region_id, pool_id, instance_type, gpu_count, cpu, memory_gib, vpc_id, vswitch_id,
                       security_group_id, state)
SELECT gen_random_uuid(), '00000000-0000-0000-0000-0000000000b1', 'ra', 't4', 'x', 1, 4, 16, 'v', 's', 'g', 'running'
FROM generate_series(1, 2);
SELECT results_eq($$SELECT instances, gpus, cpu, memory_gib FROM tenant_usage WHERE tenant_id = '00000000-0000-0000-0000-0000000000a1'$$,
                  $$VALUES (2, 2, 8::numeric, 32::numeric)$$, 'an insert of running instances counts them');
SELECT is((SELECT count(*) FROM allocation_regions WHERE allocation_id = '00000000-0000-0000-0000-0000000000b1'), 1::bigint,
          'and lists the allocation''s region');
INSERT INTO instances (id, allocation_id, region_id, pool_id, instance_type, gpu_count, cpu, memory_gib, vpc_id, vswitch_id,
                       security_group_id, state)
SELECT gen_random_uuid(), '00000000-0000-0000-0000-0000000000b1', r, 't4', 'x', 1, 4, 16, 'v', 's', 'g', 'released'
FROM unnest('{ra,rb}'::text[]) AS r;
SELECT is((SELECT array_agg(region_id ORDER BY region_id) FROM allocation_regions
           WHERE allocation_id = '00000000-0000-0000-0000-0000000000b1'), '{ra,rb}',
          'more instances of it list a new region, and a listed one not again');
UPDATE instances SET state = 'released' WHERE seq = (SELECT min(seq) FROM instances);
SELECT is((SELECT instances FROM tenant_usage WHERE tenant_id = '00000000-0000-0000-0000-0000000000a1'), 1,
          'an update that stops one takes it off');
DELETE FROM instances WHERE state = 'running';
SELECT is((SELECT gpus FROM tenant_usage WHERE tenant_id = '00000000-0000-0000-0000-0000000000a1'), 0, 'a delete takes it off');
SELECT lives_ok($$SELECT gpb_count_usage(ARRAY['00000000-0000-0000-0000-0000000000b1'::uuid], ARRAY[1]);
                  SELECT gpb_add_usage(ARRAY[ROW('00000000-0000-0000-0000-0000000000a1', 1, 0, 0, 0)::tenant_usage])$$,
                'gpb_count_usage and gpb_add_usage add to the counters');
SELECT is((SELECT instances FROM tenant_usage WHERE tenant_id = '00000000-0000-0000-0000-0000000000a1'), 2, 'by allocation and by tenant');
-- tenant_usage_within_quota (gpb_enforce_quota)
SELECT throws_ok($$UPDATE tenant_usage SET gpus = 4 WHERE tenant_id = '00000000-0000-0000-0000-0000000000a2'$$, 'GB003',
                 'quota gpus: 0 in use + 4 requested exceeds the limit of 3', 'a rise past the quota is refused with GB003');
SELECT * FROM finish();
ROLLBACK;
