-- definitions/budgets.sql: monthly budgets kept as counters.
BEGIN;
\ir fixtures.psql
SELECT plan(21);
-- Each trigger runs its function.
SELECT trigger_is('tenant_spend', 'tenant_spend_within_budget', 'gpb_enforce_budget');
SELECT trigger_is('instances', 'instances_usage_update_spend', 'gpb_instances_spend');
SELECT trigger_is('allocations', 'allocations_lease_spend', 'gpb_lease_spend');
SELECT trigger_is('pools', 'pools_price_spend', 'gpb_price_spend');
SELECT trigger_is('tenants', 'tenants_budget_set', 'gpb_budget_set');
SELECT ok(gpb_has_budget('{"gpuHoursPerMonth": 1}') AND NOT gpb_has_budget('{"gpus": 1}'), 'gpb_has_budget');
SELECT results_eq($$SELECT month, seconds FROM gpb_month_pieces('2026-11-30 23:00Z', '2026-12-01 01:00Z')$$,
                  $$VALUES ('2026-11-01'::date, 3600::numeric), ('2026-12-01'::date, 3600::numeric)$$, 'cut at the month start');
SELECT is((SELECT sum(seconds) FROM gpb_month_pieces('2026-12-01 01:00Z', '2026-12-01 00:00Z')), -3600::numeric,
          'backwards: negative');
SELECT is(gpb_budget_problem('{"spendPerMonth": 10}', '2026-12-01', 36000 * 0.5, 0, 36000, 0)->>'remaining', '5',
          'gpb_budget_problem: what remains of the budget');
SELECT is(gpb_budget_problem('{"spendPerMonth": 10}', '2026-12-01', 0, 0, 3600, 0), NULL, 'within: no problem');
-- gpb_add_spend, tenant_spend_within_budget (gpb_enforce_budget)
SELECT lives_ok($$SELECT gpb_add_spend(ARRAY['00000000-0000-0000-0000-0000000000a3'::uuid], ARRAY[now()], ARRAY[now() + interval '1 hour'],
                                       ARRAY[50::numeric], ARRAY[0::numeric], true)$$, 'a commitment within the budget');
SELECT is((SELECT sum(committed_spend) FROM tenant_spend), 50 * 3600::numeric, 'is counted in price-seconds');
SELECT throws_ok($$SELECT gpb_add_spend(ARRAY['00000000-0000-0000-0000-0000000000a3'::uuid], ARRAY[now()], ARRAY[now() + interval '1 hour'],
                                        ARRAY[60::numeric], ARRAY[0::numeric], true)$$, 'GB004', NULL,
                 'a commitment past the budget is refused with GB004');
-- gpb_spend_started (from instances_usage_insert), instances_usage_update_spend (gpb_instances_spend),
-- allocations_lease_spend (gpb_lease_spend), pools_price_spend (gpb_price_spend)
DELETE FROM tenant_spend;
UPDATE tenants SET quota = '{"spendPerMonth": 1000000}' WHERE name = 'budget';
SELECT is((SELECT count(*) FROM gpb_grant(t_grant('00000000-0000-0000-0000-0000000000a3', 'ra', 't4', 1, NULL, 3600))), 1::bigint,
          'a budgeted grant');
SELECT is((SELECT sum(committed_spend) FROM tenant_spend), 2 * 3600::numeric, 'commits its price until the lease ends');
SELECT lives_ok($$SELECT gpb_spend_started('{}', '{}', '{}', '{}')$$, 'gpb_spend_started: no instances, nothing to commit');
UPDATE allocations SET lease_expires_at = lease_expires_at + interval '1 hour';
UPDATE pools SET price_per_hour = 3 WHERE region_id = 'ra' AND id = 't4';
UPDATE instances SET state = 'released';
SELECT is((SELECT sum(committed_spend + adjusted_spend) FROM tenant_spend), 0::numeric,
          'renewed, repriced and released at once: nothing left committed');
-- tenants_budget_set (gpb_budget_set)
SELECT is((SELECT count(*) FROM gpb_grant(t_grant('00000000-0000-0000-0000-0000000000a1', 'ra', 't4', 2))), 2::bigint,
          'a grant of a tenant without a budget');
SELECT is((SELECT count(*) FROM tenant_spend WHERE tenant_id = '00000000-0000-0000-0000-0000000000a1'), 0::bigint,
          'keeps no spend counters');
UPDATE tenants SET quota = '{"spendPerMonth": 1000}' WHERE name = 'free';
SELECT results_eq($$SELECT sum(committed_spend), sum(adjusted_spend) FROM tenant_spend
                    WHERE tenant_id = '00000000-0000-0000-0000-0000000000a1'$$,
                  $$VALUES (0::numeric, 2 * 3 * 3600::numeric)$$,
                  'a budget set starts the counters from the live leases (2 instances at 3/h, 1 h left), as corrections');
UPDATE tenants SET quota = '{}' WHERE name = 'budget';
SELECT is((SELECT count(*) FROM tenant_spend WHERE tenant_id = '00000000-0000-0000-0000-0000000000a3'), 0::bigint,
          'a budget removed drops its counters');
SELECT * FROM finish();
ROLLBACK;
