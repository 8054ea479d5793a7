-- definitions/notifications.sql: NOTIFY wakes brokers. Notifications leave at commit, so
-- this file commits (it has its database to itself): a writer session and a listener
-- session (dblink) in autocommit.
\ir fixtures.psql
SELECT plan(16);
-- Each trigger runs its function.
SELECT trigger_is('pools', 'pools_notify_added', 'gpb_notify_inventory');
SELECT trigger_is('pools', 'pools_notify_freed', 'gpb_notify_inventory');
SELECT trigger_is('regions', 'regions_notify', 'gpb_notify_inventory');
SELECT trigger_is('tenants', 'tenants_notify', 'gpb_notify_tenant');
SELECT trigger_is('policies', 'policies_notify', 'gpb_notify_tenant');
SELECT trigger_is('allocations', 'allocations_notify_pending', 'gpb_notify_inventory');
SELECT dblink_connect('listener', t_conninfo());
SELECT dblink_connect('writer', t_conninfo());
SELECT dblink_exec('listener', 'LISTEN gpb_inventory');
SELECT dblink_exec('listener', 'LISTEN gpb_tenant');
-- The channels the writer's statement made the listener hear.
CREATE FUNCTION t_heard(p_sql text) RETURNS text[] LANGUAGE plpgsql AS $$
BEGIN
    PERFORM dblink_exec('writer', p_sql);
    PERFORM pg_sleep(0.1);
    RETURN (SELECT coalesce(array_agg(DISTINCT notify_name ORDER BY notify_name), '{}') FROM dblink_get_notify('listener'));
END
$$;
SELECT is(t_heard($$UPDATE pools SET allocated = allocated + 1 WHERE id = 't4'$$), '{}', 'a grant notifies nobody');
SELECT is(t_heard($$UPDATE pools SET allocated = allocated - 1 WHERE id = 't4'$$), '{gpb_inventory}', 'freed capacity: pools_notify_freed');
SELECT is(t_heard($$UPDATE pools SET capacity = 11 WHERE id = 't4'$$), '{gpb_inventory}', 'a report: pools_event_reported notifies');
SELECT is(t_heard($$INSERT INTO pools (region_id, id, compute_class, qos, cpu, memory_gib, instance_type, capacity, price_per_hour)
                    VALUES ('rb', 'g8', 'general-purpose', '{default}', 2, 4, 'x', 1, 1)$$), '{gpb_inventory}',
          'a new pool: pools_notify_added');
SELECT is(t_heard($$UPDATE regions SET labels = '{"a": "b"}' WHERE id = 'rb'$$), '{gpb_inventory}', 'a region: regions_notify');
SELECT is(t_heard($$UPDATE tenants SET quota = '{"gpus": 9}' WHERE name = 'quota'$$), '{gpb_tenant}', 'a tenant: tenants_notify');
SELECT is(t_heard($$INSERT INTO policies (tenant_id, name, policy) VALUES ('00000000-0000-0000-0000-0000000000a1', 'p', '{}')$$),
          '{gpb_tenant}', 'a policy: policies_notify');
SELECT is(t_heard($$INSERT INTO allocations (id, tenant_id, status, request, replicas, lease_seconds, lease_expires_at)
                    VALUES (gen_random_uuid(), '00000000-0000-0000-0000-0000000000a1', 'active', '{}', 1, 60, now())$$),
          '{}', 'a granted allocation notifies nobody');
SELECT is(t_heard($$INSERT INTO allocations (id, tenant_id, status, request, replicas, lease_seconds, queue_deadline)
                    VALUES (gen_random_uuid(), '00000000-0000-0000-0000-0000000000a1', 'pending', '{}', 1, 60, now())$$),
          '{gpb_inventory}', 'a request that waits: allocations_notify_pending');
SELECT is((SELECT array_agg(notify_name) FROM dblink_get_notify('listener')), NULL, 'nothing more');
SELECT dblink_disconnect('listener');
SELECT dblink_disconnect('writer');
SELECT * FROM finish();
