-- gpubroker schema, version 3: many grants in one statement. Concurrent grants that
-- arrive while another batch runs are sent together, so they share one round trip and
-- one commit (one WAL flush), and on a hot pool the pool row is locked once per batch
-- instead of once per grant. Each grant is answered only after the batch commits.

-- A tenant's named policies as one array in name order: what a grant selects its
-- placement from, and (through its md5) how a batch knows the broker planned with
-- the policies that hold now.
CREATE FUNCTION gpb_tenant_policies(p_tenant uuid)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('name', name, 'selector', selector, 'policy', policy) ORDER BY name),
                    '[]')
    FROM policies WHERE tenant_id = p_tenant
$$;

-- Runs gpb_grant for each element of p_grants, in order, each in its own
-- subtransaction: a grant that finds its pools short (SQLSTATE GB001) is rolled back
-- alone and the others go on. So is a grant whose tenant changed since the broker
-- read it (brokers reuse a tenant's settings for a moment): a quota appeared (quotas
-- are checked under the tenant's lock, in a transaction of their own) or its
-- policies are not those the broker planned with. The broker reads the tenant afresh. A skipped
-- grant returns no rows; the broker plans it again. Any other error fails the whole
-- statement, and the broker runs the grants one by one to find whose it was. Every
-- pool the batch may touch is locked first, in key order, so that two batches never
-- wait for each other in a cycle.
-- p_grants: [{"allocation": {...}, "placements": [...], "actor": "...",
-- "policies": md5 of gpb_tenant_policies}], the first three gpb_grant's arguments;
-- keep batches well under 64 (PostgreSQL caches 64
-- subtransactions per backend).
CREATE FUNCTION gpb_grant_batch(p_grants jsonb)
RETURNS SETOF instances
LANGUAGE plpgsql AS $$
DECLARE
    g jsonb;
    granted instances[];
BEGIN
    PERFORM 1 FROM pools
    WHERE (region_id, id) IN (SELECT placement->>'region', placement->>'pool'
                              FROM jsonb_array_elements(p_grants) AS grants,
                                   jsonb_array_elements(grants.value->'placements') AS placement)
    ORDER BY region_id, id
    FOR UPDATE;
    FOR g IN SELECT value FROM jsonb_array_elements(p_grants) LOOP
        granted := NULL;
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = (g->'allocation'->>'tenantId')::uuid
                              AND jsonb_strip_nulls(t.quota) = '{}'
                              AND md5(gpb_tenant_policies(t.id)::text) = g->>'policies') THEN
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
