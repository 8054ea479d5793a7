-- gpubroker schema, version 3: many grants in one statement. Concurrent grants that
-- arrive while another batch runs are sent together, so they share one round trip and
-- one commit (one WAL flush), and on a hot pool the pool row is locked once per batch
-- instead of once per grant. Each grant is answered only after the batch commits.

-- A tenant's named policies as one array in name order: what a grant selects its
-- placement from, and (through its md5) how a batch knows the broker planned with
-- the policies that hold now.
-- (Functions here are plpgsql, which keeps their plans for the session; PostgreSQL
-- 15 plans a SQL function's body again in every statement that calls it.)
CREATE FUNCTION gpb_tenant_policies(p_tenant uuid)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT coalesce(jsonb_agg(jsonb_build_object('name', name, 'selector', selector, 'policy', policy)
                                      ORDER BY name), '[]')
            FROM policies WHERE tenant_id = p_tenant);
END
$$;

-- Whether a batched grant's tenant is as the broker read it (brokers reuse a tenant's
-- settings for a moment): no quota (quotas are checked under the tenant's lock, in a
-- transaction of their own) and the policies it planned with (p_policies: their md5).
CREATE FUNCTION gpb_tenant_unchanged(p_tenant uuid, p_policies text)
RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM tenants t
                   WHERE t.id = p_tenant AND jsonb_strip_nulls(t.quota) = '{}'
                     AND md5(gpb_tenant_policies(t.id)::text) = p_policies);
END
$$;

-- Grants on pools without idle instances, all in one statement: each grant's
-- placements are counted against its pools' room in batch order, and a grant lands
-- only if every placement fits, its regions are active and its tenant is unchanged.
-- A grant that does not land still counts in the running demand, so a later one may
-- be turned away although it would fit: it is planned again, like any lost race.
-- The caller has locked the pools. Writes what gpb_grant writes. Its one plan is
-- made once per session: the batch's shape is in the data, not in the statement.
CREATE FUNCTION gpb_grant_fresh(p_grants jsonb)
RETURNS SETOF instances
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    RETURN QUERY
    WITH grants AS (
        SELECT n, g.value AS item, (g.value->'allocation'->>'id')::uuid AS allocation_id
        FROM jsonb_array_elements(p_grants) WITH ORDINALITY AS g (value, n)
    ), placements AS (
        SELECT grants.n, grants.allocation_id, p.ord, p.value->>'region' AS region_id, p.value->>'pool' AS pool_id,
               (p.value->>'count')::integer AS count, (p.value->>'unit')::integer AS unit, p.value->'vSwitches' AS vswitches
        FROM grants, jsonb_array_elements(grants.item->'placements') WITH ORDINALITY AS p (value, ord)
    ), demand AS (
        SELECT placements.*,
               sum(count) OVER (PARTITION BY placements.region_id, placements.pool_id ORDER BY n, ord)
                   <= pools.capacity - pools.allocated
                   AND regions.state = 'active' AS fits
        FROM placements
        LEFT JOIN pools ON pools.region_id = placements.region_id AND pools.id = placements.pool_id
        LEFT JOIN regions ON regions.id = placements.region_id
    ), granted AS (
        SELECT grants.* FROM grants
        WHERE NOT EXISTS (SELECT 1 FROM demand WHERE demand.n = grants.n AND coalesce(demand.fits, false) = false)
          AND gpb_tenant_unchanged((item->'allocation'->>'tenantId')::uuid, item->>'policies')
    ), allocations_added AS (
        INSERT INTO allocations (id, tenant_id, status, request, replicas, placed_replicas, labels, decisions,
                                 lease_seconds, lease_expires_at, created_at, updated_at)
        SELECT allocation_id, (item->'allocation'->>'tenantId')::uuid, item->'allocation'->>'status',
               item->'allocation'->'request', (item->'allocation'->>'replicas')::integer,
               (item->'allocation'->>'placedReplicas')::integer, item->'allocation'->'labels',
               item->'allocation'->'decisions', (item->'allocation'->>'leaseSeconds')::integer,
               now() + make_interval(secs => (item->'allocation'->>'leaseSeconds')::integer), now(), now()
        FROM granted ORDER BY n
    ), counters AS (
        UPDATE pools SET allocated = pools.allocated + taken.count, updated_at = now()
        FROM (SELECT region_id, pool_id, sum(count)::integer AS count
              FROM demand JOIN granted USING (n) GROUP BY region_id, pool_id) AS taken
        WHERE pools.region_id = taken.region_id AND pools.id = taken.pool_id
    ), instances_added AS (
        INSERT INTO instances (id, allocation_id, region_id, pool_id, instance_type, gpu_series, gpu_count,
                               cpu, memory_gib, vpc_id, vswitch_id, security_group_id, unit, state, reused,
                               created_at)
        SELECT gen_random_uuid(), d.allocation_id, p.region_id, p.id, p.instance_type, p.gpu_series,
               coalesce(p.gpus_per_instance, 0), p.cpu, p.memory_gib, r.vpc_id, d.vswitches->>(k - 1),
               r.security_group_id, d.unit, 'running', false, now()
        FROM demand d JOIN granted USING (n)
        CROSS JOIN generate_series(1, d.count) AS k
        JOIN pools p ON p.region_id = d.region_id AND p.id = d.pool_id
        JOIN regions r ON r.id = d.region_id
        ORDER BY d.n, d.ord, k
        RETURNING *
    ), recorded AS (
        INSERT INTO ledger (kind, region_id, pool_id, allocation_id, instance_id, delta, actor)
        SELECT 'reserved', i.region_id, i.pool_id, i.allocation_id, i.id, 1, granted.item->>'actor'
        FROM instances_added i JOIN granted USING (allocation_id)
        ORDER BY i.seq
    )
    SELECT * FROM instances_added ORDER BY seq;
END
$$;

-- Many grants in one statement, each answered as if it ran alone: a grant that finds
-- its pools short, or whose tenant changed, is skipped (returns no rows) and the
-- others go on; the broker plans a skipped grant again. Every pool the batch may
-- touch is locked first, in key order, so that two batches never wait for each other
-- in a cycle. Pools without idle instances take the whole batch in one statement
-- (gpb_grant_fresh); when one has idle instances to reuse, each grant runs gpb_grant
-- in its own subtransaction, which rolls back alone on SQLSTATE GB001. Any other
-- error fails the whole statement, and the broker runs the grants one by one to find
-- whose it was.
-- p_grants: [{"allocation": {...}, "placements": [...], "actor": "...",
-- "policies": md5 of gpb_tenant_policies}], the first three gpb_grant's arguments;
-- keep batches well under 64 (PostgreSQL caches 64 subtransactions per backend).
CREATE FUNCTION gpb_grant_batch(p_grants jsonb)
RETURNS SETOF instances
LANGUAGE plpgsql AS $$
DECLARE
    g jsonb;
    granted instances[];
    reuse boolean;
BEGIN
    WITH touched AS (
        SELECT idle > 0 AS has_idle FROM pools
        WHERE (region_id, id) IN (SELECT placement->>'region', placement->>'pool'
                                  FROM jsonb_array_elements(p_grants) AS grants,
                                       jsonb_array_elements(grants.value->'placements') AS placement)
        ORDER BY region_id, id
        FOR UPDATE
    )
    SELECT coalesce(bool_or(has_idle), false) INTO reuse FROM touched;
    IF NOT reuse THEN
        RETURN QUERY SELECT * FROM gpb_grant_fresh(p_grants);
        RETURN;
    END IF;
    FOR g IN SELECT value FROM jsonb_array_elements(p_grants) LOOP
        granted := NULL;
        BEGIN
            IF NOT gpb_tenant_unchanged((g->'allocation'->>'tenantId')::uuid, g->>'policies') THEN
                RAISE EXCEPTION 'tenant % changed', g->'allocation'->>'tenantId' USING ERRCODE = 'GB001';
            END IF;
            -- Collected before returning: rows already returned would survive a rollback.
            SELECT array_agg(i ORDER BY i.seq) INTO granted
            FROM gpb_grant(g->'allocation', g->'placements', g->>'actor') AS i;
        EXCEPTION WHEN SQLSTATE 'GB001' THEN
            granted := NULL;
        END;
        IF granted IS NOT NULL THEN
            RETURN QUERY SELECT * FROM unnest(granted);
        END IF;
    END LOOP;
END
$$;
