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

-- Whether a batched grant's tenant has the policies the broker planned with (brokers
-- reuse a tenant's settings for a moment; p_policies: their md5). Quotas and budgets
-- the batch checks itself.
CREATE FUNCTION gpb_tenant_unchanged(p_tenant uuid, p_policies text)
RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM tenants t
                   WHERE t.id = p_tenant AND md5(gpb_tenant_policies(t.id)::text) = p_policies);
END
$$;

-- Reserves planned placements for an allocation: idle warm instances of each pool
-- first (most recently idled first), then new capacity through a conditional counter
-- update. Writes the instances and their `reserved` ledger rows; returns the
-- instances, created at the transaction's time. p_placements:
-- [{"region", "pool", "count", "unit", "vSwitches": [...]}].
CREATE FUNCTION gpb_reserve(p_allocation_id uuid, p_placements jsonb, p_actor text)
RETURNS SETOF instances
LANGUAGE plpgsql AS $$
DECLARE
    placement jsonb;
    wanted integer;
    reused_ids uuid[];
    fresh integer;
BEGIN
    FOR placement IN SELECT value FROM jsonb_array_elements(p_placements) LOOP
        wanted := (placement->>'count')::integer;
        WITH taken AS (
            UPDATE instances SET state = 'released', ended_at = clock_timestamp()
            WHERE seq IN (SELECT seq FROM instances
                          WHERE region_id = placement->>'region' AND pool_id = placement->>'pool' AND state = 'idle'
                          ORDER BY idle_since DESC, seq DESC LIMIT wanted FOR UPDATE SKIP LOCKED)
            RETURNING id
        )
        SELECT coalesce(array_agg(id), '{}') INTO reused_ids FROM taken;
        fresh := wanted - cardinality(reused_ids);
        -- The region must still be active: a plan may come from a snapshot a few
        -- milliseconds old, and a cordoned region gets nothing new.
        UPDATE pools SET allocated = allocated + fresh, idle = idle - cardinality(reused_ids), updated_at = now()
        WHERE region_id = placement->>'region' AND id = placement->>'pool'
          AND allocated + fresh <= capacity AND idle >= cardinality(reused_ids)
          AND EXISTS (SELECT 1 FROM regions WHERE id = placement->>'region' AND state = 'active');
        IF NOT FOUND THEN
            RAISE EXCEPTION 'pool %/% cannot take % more replicas', placement->>'region', placement->>'pool', wanted
                USING ERRCODE = 'GB001';
        END IF;
        RETURN QUERY
        WITH added AS (
            INSERT INTO instances (id, allocation_id, region_id, pool_id, instance_type, gpu_series, gpu_count,
                                   cpu, memory_gib, vpc_id, vswitch_id, security_group_id, unit, state, reused,
                                   created_at)
            SELECT coalesce(reused_ids[k], gen_random_uuid()), p_allocation_id, p.region_id, p.id, p.instance_type,
                   p.gpu_series, coalesce(p.gpus_per_instance, 0), p.cpu, p.memory_gib, r.vpc_id,
                   placement->'vSwitches'->>(k - 1), r.security_group_id, (placement->>'unit')::integer, 'running',
                   k <= cardinality(reused_ids), now()
            FROM generate_series(1, wanted) AS k
            CROSS JOIN pools p JOIN regions r ON r.id = p.region_id
            WHERE p.region_id = placement->>'region' AND p.id = placement->>'pool'
            ORDER BY k
            RETURNING *
        ), recorded AS (
            INSERT INTO ledger (kind, region_id, pool_id, allocation_id, instance_id, delta, actor)
            SELECT 'reserved', region_id, pool_id, p_allocation_id, id, CASE WHEN reused THEN 0 ELSE 1 END, p_actor
            FROM added
        )
        SELECT * FROM added ORDER BY seq;
    END LOOP;
END
$$;

-- Creates an allocation and reserves its placements in one statement: on its own it
-- is one transaction, so a grant needs no BEGIN or COMMIT. The allocation is created
-- at the transaction's time, like its instances, and its lease runs from then.
-- p_allocation: {"id", "tenantId", "status", "request", "replicas", "placedReplicas",
-- "labels", "decisions", "leaseSeconds"}.
CREATE FUNCTION gpb_grant(p_allocation jsonb, p_placements jsonb, p_actor text)
RETURNS SETOF instances
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO allocations (id, tenant_id, status, request, replicas, placed_replicas, labels, decisions,
                             lease_seconds, lease_expires_at, created_at, updated_at)
    VALUES ((p_allocation->>'id')::uuid, (p_allocation->>'tenantId')::uuid, p_allocation->>'status',
            p_allocation->'request', (p_allocation->>'replicas')::integer,
            (p_allocation->>'placedReplicas')::integer, p_allocation->'labels', p_allocation->'decisions',
            (p_allocation->>'leaseSeconds')::integer,
            now() + make_interval(secs => (p_allocation->>'leaseSeconds')::integer), now(), now());
    RETURN QUERY SELECT * FROM gpb_reserve((p_allocation->>'id')::uuid, p_placements, p_actor);
END
$$;

-- Grants on pools without idle instances, all in one statement: each grant's
-- placements are counted against its pools' room in batch order, and a grant lands
-- only if every placement fits, its regions are active and its tenant is unchanged.
-- A grant that does not land still counts in the running demand, so a later one may
-- be turned away although it would fit: it is planned again, like any lost race.
-- The caller has locked the pools. Writes what gpb_grant writes. Its one plan is
-- made once per session: the batch's shape is in the data, not in the statement.
-- Each tenant of the batch is checked once (with its policies'
-- md5) instead of once per grant: gpb_tenant_unchanged runs a query and hashes the
-- tenant's policies, about a seventh of a grant's cost in a batch of 16. MATERIALIZED
-- keeps PostgreSQL from pushing the check back below the DISTINCT.
CREATE FUNCTION gpb_grant_fresh(p_grants jsonb)
RETURNS SETOF instances
LANGUAGE plpgsql
-- PostgreSQL guesses 100 rows per jsonb_array_elements, so 10,000 placements per batch,
-- and at 20,000 pools it hash-joined them with a scan of every pool (grants/s fell to
-- 0.3x of 40 pools): index lookups are right at every size.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off AS $$
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
    ), tenants_checked AS MATERIALIZED (
        SELECT tenant_id, policies, gpb_tenant_unchanged(tenant_id, policies) AS unchanged
        FROM (SELECT DISTINCT (item->'allocation'->>'tenantId')::uuid AS tenant_id, item->>'policies' AS policies
              FROM grants) AS batch_tenants
    ), granted AS (
        SELECT grants.* FROM grants
        JOIN tenants_checked ON tenants_checked.tenant_id = (grants.item->'allocation'->>'tenantId')::uuid
                            AND tenants_checked.policies = grants.item->>'policies'
        WHERE tenants_checked.unchanged
          AND NOT EXISTS (SELECT 1 FROM demand WHERE demand.n = grants.n AND coalesce(demand.fits, false) = false)
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

-- gpb_grant_batch with quotas: for a batch with a tenant that has a quota, locks the
-- pools and then the tenants' counters, each in key order, and leaves out every grant
-- that would take its tenant past a quota, counting the tenant's grants before it in the
-- batch as granted (the JSON is rebuilt only when a grant is left out). A quota
-- set after the check below is still enforced: the counters' trigger refuses it
-- (GB003), the statement fails, and the broker runs its grants one by one.
CREATE FUNCTION gpb_grant_batch_within_quotas(p_grants jsonb)
RETURNS SETOF instances
LANGUAGE plpgsql AS $$
DECLARE
    tenant_ids uuid[];
    refused bigint[];
BEGIN
    SELECT array_agg(DISTINCT (value->'allocation'->>'tenantId')::uuid) INTO tenant_ids
    FROM jsonb_array_elements(p_grants);
    IF EXISTS (SELECT 1 FROM tenants t WHERE t.id = ANY (tenant_ids) AND gpb_has_quota_limits(t.quota)) THEN
        PERFORM 1 FROM pools
        WHERE (region_id, id) IN (SELECT placement->>'region', placement->>'pool'
                                  FROM jsonb_array_elements(p_grants) AS grants,
                                       jsonb_array_elements(grants.value->'placements') AS placement)
        ORDER BY region_id, id
        FOR UPDATE;
        PERFORM 1 FROM tenant_usage WHERE tenant_id = ANY (tenant_ids) ORDER BY tenant_id FOR UPDATE;
        SELECT array_agg(n) INTO refused
        FROM (SELECT g.n,
                     gpb_quota_problem(t.quota, u,
                                       ROW(d.tenant_id, sum(d.instances) OVER w, sum(d.gpus) OVER w,
                                           sum(d.cpu) OVER w, sum(d.memory_gib) OVER w)::tenant_usage) AS problem
              FROM jsonb_array_elements(p_grants) WITH ORDINALITY AS g (value, n)
              JOIN tenants t ON t.id = (g.value->'allocation'->>'tenantId')::uuid AND gpb_has_quota_limits(t.quota)
              JOIN tenant_usage u ON u.tenant_id = t.id,
                   LATERAL gpb_grant_demand(g.value->'allocation') d
              WINDOW w AS (PARTITION BY d.tenant_id ORDER BY g.n)) checked
        WHERE problem IS NOT NULL;
        IF refused IS NOT NULL THEN
            SELECT coalesce(jsonb_agg(value ORDER BY n), '[]') INTO p_grants
            FROM jsonb_array_elements(p_grants) WITH ORDINALITY AS g (value, n)
            WHERE n <> ALL (refused);
        END IF;
    END IF;
    RETURN QUERY SELECT * FROM gpb_grant_batch(p_grants);
END
$$;

-- What each grant of a batch (gpb_grant_batch's argument) costs at the prices in the
-- database, per month of its lease, and the first limit it passes, counting the
-- tenant's grants before it in the batch as granted: over its price cap
-- (`maxPricePerHour` of the request's shape or placement) or, for a tenant with a
-- budget, over the budget as its counters stand. A grant whose pools are gone costs
-- nothing here (gpb_grant_batch skips it). Without JIT: the planner cannot know that a
-- batch has a few dozen grants and a lease a month or two, and its estimate compiled
-- the query for seconds.
CREATE FUNCTION gpb_grant_costs(p_grants jsonb)
RETURNS TABLE (n bigint, over_cap boolean, problem jsonb)
LANGUAGE plpgsql STABLE
SET jit = off AS $$
BEGIN
    RETURN QUERY
    WITH grants AS (
        SELECT g.n, (g.value->'allocation'->>'tenantId')::uuid AS tenant_id,
               (g.value->'allocation'->>'leaseSeconds')::integer AS lease,
               least((g.value->'allocation'->'request'->'shape'->>'maxPricePerHour')::double precision,
                     (g.value->'allocation'->'request'->'placement'->>'maxPricePerHour')::double precision) AS cap,
               g.value->'placements' AS placements
        FROM jsonb_array_elements(p_grants) WITH ORDINALITY AS g (value, n)
    ), priced AS (
        SELECT grants.n, grants.tenant_id, grants.lease,
               coalesce(sum((pl->>'count')::integer * p.price_per_hour::numeric), 0) AS price,
               coalesce(sum((pl->>'count')::integer * coalesce(p.gpus_per_instance, 0)), 0) AS gpus,
               coalesce(bool_or(p.price_per_hour > grants.cap), false) AS over_cap
        FROM grants
        CROSS JOIN LATERAL jsonb_array_elements(grants.placements) AS pl
        LEFT JOIN pools p ON p.region_id = pl->>'region' AND p.id = pl->>'pool'
        GROUP BY grants.n, grants.tenant_id, grants.lease
    ), demand AS (
        SELECT priced.n, priced.tenant_id, t.quota, m.month, priced.price * m.seconds AS spend,
               priced.gpus * m.seconds AS gpu_seconds
        FROM priced JOIN tenants t ON t.id = priced.tenant_id AND gpb_has_budget(t.quota)
        CROSS JOIN LATERAL gpb_month_pieces(now(), now() + make_interval(secs => priced.lease)) m
    ), checked AS (
        SELECT d.*, coalesce(s.committed_spend + s.adjusted_spend, 0) + sum(d.spend) OVER w - d.spend AS used_spend,
               coalesce(s.committed_gpu_seconds + s.adjusted_gpu_seconds, 0)
                   + sum(d.gpu_seconds) OVER w - d.gpu_seconds AS used_gpu_seconds
        FROM demand d
        LEFT JOIN tenant_spend s ON s.tenant_id = d.tenant_id AND s.month = d.month
        WINDOW w AS (PARTITION BY d.tenant_id, d.month ORDER BY d.n)
    ), refused AS (
        -- gpb_budget_problem's test, in SQL, so that only the refusals pay for its message.
        SELECT DISTINCT ON (c.n) c.n, gpb_budget_problem(c.quota, c.month, c.used_spend, c.used_gpu_seconds, c.spend,
                                                         c.gpu_seconds) AS problem
        FROM checked c
        WHERE (c.spend > 0 AND c.used_spend + c.spend > (c.quota->>'spendPerMonth')::numeric * 3600)
           OR (c.gpu_seconds > 0 AND c.used_gpu_seconds + c.gpu_seconds > (c.quota->>'gpuHoursPerMonth')::numeric * 3600)
        ORDER BY c.n, c.month
    )
    SELECT priced.n, priced.over_cap, refused.problem FROM priced LEFT JOIN refused ON refused.n = priced.n;
END
$$;

-- The grants of a batch (gpb_grant_batch's argument) that keep within their price caps
-- and their tenants' budgets, for gpb_grant_batch_within_quotas; a grant left out
-- returns no rows, like any other, and the broker asks gpb_grant_costs why. It locks
-- what it reads, in the order every grant takes it (pools, then the tenants' usage rows,
-- then the budgeted tenants' counters of the months the leases may reach: a lease lasts
-- at most a day), so prices and counters hold until the batch commits. A batch with
-- neither a price cap nor a budgeted tenant passes through untouched.
CREATE FUNCTION gpb_grants_affordable(p_grants jsonb)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    budgeted uuid[];
    refused bigint[];
BEGIN
    IF EXISTS (SELECT 1 FROM tenants WHERE gpb_has_budget(quota)) THEN
        SELECT array_agg(t.id ORDER BY t.id) INTO budgeted FROM tenants t
        WHERE t.id IN (SELECT (value->'allocation'->>'tenantId')::uuid FROM jsonb_array_elements(p_grants))
          AND gpb_has_budget(t.quota);
    END IF;
    IF budgeted IS NULL AND NOT EXISTS (
        SELECT 1 FROM jsonb_array_elements(p_grants) AS g
        WHERE (g.value->'allocation'->'request'->'shape'->>'maxPricePerHour') IS NOT NULL
           OR (g.value->'allocation'->'request'->'placement'->>'maxPricePerHour') IS NOT NULL) THEN
        RETURN p_grants;
    END IF;
    PERFORM 1 FROM pools
    WHERE (region_id, id) IN (SELECT placement->>'region', placement->>'pool'
                              FROM jsonb_array_elements(p_grants) AS grants,
                                   jsonb_array_elements(grants.value->'placements') AS placement)
    ORDER BY region_id, id
    FOR UPDATE;
    IF budgeted IS NOT NULL THEN
        PERFORM 1 FROM tenant_usage
        WHERE tenant_id IN (SELECT (value->'allocation'->>'tenantId')::uuid FROM jsonb_array_elements(p_grants))
        ORDER BY tenant_id
        FOR UPDATE;
        INSERT INTO tenant_spend (tenant_id, month)
        SELECT b.id, m.month FROM unnest(budgeted) AS b (id), gpb_month_pieces(now(), now() + interval '1 day') m
        ORDER BY 1, 2
        ON CONFLICT DO NOTHING;
        PERFORM 1 FROM tenant_spend
        WHERE tenant_id = ANY (budgeted) AND month >= (date_trunc('month', now() AT TIME ZONE 'UTC'))::date
        ORDER BY tenant_id, month
        FOR UPDATE;
    END IF;
    SELECT array_agg(n) INTO refused FROM gpb_grant_costs(p_grants) WHERE over_cap OR problem IS NOT NULL;
    IF refused IS NULL THEN
        RETURN p_grants;
    END IF;
    RETURN (SELECT coalesce(jsonb_agg(value ORDER BY n), '[]')
            FROM jsonb_array_elements(p_grants) WITH ORDINALITY AS g (value, n) WHERE n <> ALL (refused));
END
$$;
