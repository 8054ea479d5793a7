-- The grant path's input, typed. The broker sends each planned grant as one JSON object
-- with these members (snake_case, as here), read once at the call with
-- jsonb_populate_record(set) into these types; gpb_grants_complete then refuses what
-- came without a member a grant needs (a misspelt key reads as NULL), so nothing below
-- reads the grant's JSON by key. max_price_per_hour: the request's price cap (the lower
-- of its shape's and its placement's), NULL for none; vswitches: one per instance.
-- (Functions here are plpgsql, which keeps their plans for the session; PostgreSQL 15
-- plans a SQL function's body again in every statement that calls it.)
CREATE TYPE gpb_placement AS (region text, pool text, count integer, unit integer, vswitches text[]);
CREATE TYPE gpb_planned_grant AS (
    allocation_id uuid, tenant_id uuid, status text, request jsonb, replicas integer, placed_replicas integer,
    labels jsonb, decisions jsonb, lease_seconds integer, max_price_per_hour double precision,
    placements gpb_placement[], actor text, policies text);

-- Whether every grant has every member it needs (only max_price_per_hour and a
-- placement's unit may be NULL), at least one placement, a vSwitch for each instance, and
-- a request whose shape has the numbers gpb_usage_of reads by key (cpu and memoryGiB;
-- gpuCount a number when present): the schema of the one JSON the counters read, checked
-- where it enters. One query over the batch, its plan kept for the session (plpgsql).
CREATE FUNCTION gpb_grants_complete(p_grants gpb_planned_grant[])
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    -- A grant without placements joins a NULL placement: its region is NULL.
    RETURN NOT EXISTS (
        SELECT 1 FROM unnest(p_grants) AS g LEFT JOIN LATERAL unnest(g.placements) AS p ON true
        WHERE g.allocation_id IS NULL OR g.tenant_id IS NULL OR g.status IS NULL OR g.request IS NULL
           OR g.replicas IS NULL OR g.placed_replicas IS NULL OR g.labels IS NULL OR g.decisions IS NULL
           OR g.lease_seconds IS NULL OR g.actor IS NULL OR g.policies IS NULL
           OR jsonb_typeof(g.request->'shape'->'cpu') IS DISTINCT FROM 'number'
           OR jsonb_typeof(g.request->'shape'->'memoryGiB') IS DISTINCT FROM 'number'
           OR coalesce(jsonb_typeof(g.request->'shape'->'gpuCount'), 'number') <> 'number'
           OR p.region IS NULL OR p.pool IS NULL OR p.count IS NULL OR p.vswitches IS NULL
           OR cardinality(p.vswitches) < p.count);
END
$$;

-- A tenant's named policies as one array in name order: what a grant selects its
-- placement from, and (through its md5) how a batch knows the broker planned with
-- the policies that hold now.
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
-- instances, created at the transaction's time. Raises SQLSTATE GB001 when a pool no
-- longer has what the plan counted on or its region is no longer active (the caller
-- plans again).
CREATE FUNCTION gpb_reserve(p_allocation_id uuid, p_placements gpb_placement[], p_actor text)
RETURNS SETOF instances
LANGUAGE plpgsql AS $$
DECLARE
    placement gpb_placement;
    reused_ids uuid[];
    fresh integer;
BEGIN
    FOREACH placement IN ARRAY p_placements LOOP
        WITH taken AS (
            UPDATE instances SET state = 'released', ended_at = clock_timestamp()
            WHERE seq IN (SELECT seq FROM instances
                          WHERE region_id = placement.region AND pool_id = placement.pool AND state = 'idle'
                          ORDER BY idle_since DESC, seq DESC LIMIT placement.count FOR UPDATE SKIP LOCKED)
            RETURNING id
        )
        SELECT coalesce(array_agg(id), '{}') INTO reused_ids FROM taken;
        fresh := placement.count - cardinality(reused_ids);
        -- The region must still be active: a plan may come from a snapshot a few
        -- milliseconds old, and a cordoned region gets nothing new.
        UPDATE pools SET allocated = allocated + fresh, idle = idle - cardinality(reused_ids), updated_at = now(),
                         changed_xid = pg_current_xact_id()::text::bigint
        WHERE region_id = placement.region AND id = placement.pool
          AND allocated + fresh <= capacity AND idle >= cardinality(reused_ids)
          AND EXISTS (SELECT 1 FROM regions WHERE id = placement.region AND state = 'active');
        IF NOT FOUND THEN
            RAISE EXCEPTION 'pool %/% cannot take % more replicas', placement.region, placement.pool, placement.count
                USING ERRCODE = 'GB001';
        END IF;
        RETURN QUERY
        WITH added AS (
            INSERT INTO instances (id, allocation_id, region_id, pool_id, instance_type, gpu_series, gpu_count,
                                   cpu, memory_gib, vpc_id, vswitch_id, security_group_id, unit, state, reused,
                                   created_at)
            SELECT coalesce(reused_ids[k], gen_random_uuid()), p_allocation_id, p.region_id, p.id, p.instance_type,
                   p.gpu_series, coalesce(p.gpus_per_instance, 0), p.cpu, p.memory_gib, r.vpc_id,
                   placement.vswitches[k], r.security_group_id, placement.unit, 'running',
                   k <= cardinality(reused_ids), now()
            FROM generate_series(1, placement.count) AS k
            CROSS JOIN pools p JOIN regions r ON r.id = p.region_id
            WHERE p.region_id = placement.region AND p.id = placement.pool
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

-- One grant: creates its allocation and reserves its placements (gpb_reserve). On its
-- own it is one transaction; the broker calls it in a transaction of its own when it
-- preempts or records an idempotency key, and the batch for each grant when pools have
-- idle instances. The allocation is created at the transaction's time, like its
-- instances, and its lease runs from then. Quotas and budgets hold through their
-- counters' triggers (GB003, GB004); the caller checks the price cap.
CREATE FUNCTION gpb_grant(p_grant gpb_planned_grant)
RETURNS SETOF instances
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT gpb_grants_complete(ARRAY[p_grant]) THEN
        RAISE EXCEPTION 'incomplete planned grant: %', p_grant USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO allocations (id, tenant_id, status, request, replicas, placed_replicas, labels, decisions,
                             lease_seconds, lease_expires_at, created_at, updated_at)
    VALUES (p_grant.allocation_id, p_grant.tenant_id, p_grant.status, p_grant.request, p_grant.replicas,
            p_grant.placed_replicas, p_grant.labels, p_grant.decisions, p_grant.lease_seconds,
            now() + make_interval(secs => p_grant.lease_seconds), now(), now());
    RETURN QUERY SELECT * FROM gpb_reserve(p_grant.allocation_id, p_grant.placements, p_grant.actor);
END
$$;

-- What each grant of a batch costs at the prices in the database, per month of its lease,
-- and the first limit it passes, counting the tenant's grants before it in the batch as
-- granted: over its price cap or, for a tenant with a budget, over the budget as its
-- counters stand (n: the grant's place in the batch, from 1). A grant whose pools are
-- gone costs nothing here (the batch skips it). Without JIT: the planner cannot know that a
-- batch has a few dozen grants and a lease a month or two, and its estimate compiled
-- the query for seconds.
CREATE FUNCTION gpb_grant_costs(p_grants gpb_planned_grant[])
RETURNS TABLE (n bigint, over_cap boolean, problem jsonb)
LANGUAGE plpgsql STABLE
SET jit = off AS $$
BEGIN
    RETURN QUERY
    WITH grants AS (
        SELECT g.ordinality AS n, g.tenant_id, g.lease_seconds AS lease, g.max_price_per_hour AS cap, g.placements
        FROM unnest(p_grants) WITH ORDINALITY AS g
    ), priced AS (
        SELECT grants.n, grants.tenant_id, grants.lease,
               coalesce(sum(pl.count * p.price_per_hour::numeric), 0) AS price,
               coalesce(sum(pl.count * coalesce(p.gpus_per_instance, 0)), 0) AS gpus,
               coalesce(bool_or(p.price_per_hour > grants.cap), false) AS over_cap
        FROM grants
        CROSS JOIN LATERAL unnest(grants.placements) AS pl
        LEFT JOIN pools p ON p.region_id = pl.region AND p.id = pl.pool
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

-- The grant: many planned grants in one statement, each answered as if it ran alone. A
-- grant left out returns no rows and the others go on: the broker asks gpb_grant_costs
-- and gpb_quota_problem whether it was a budget, a price cap or a quota, and otherwise
-- plans it again, like any lost race. In sequence:
--  1. every grant complete (else SQLSTATE 22023 for the whole statement);
--  2. the pools it may touch locked, in key order, then (for a batch with a tenant that
--     has a quota or a budget) the tenants' usage counters and the budgeted tenants'
--     counters of the months a lease may reach (a lease lasts at most a day), in key
--     order: the order every statement takes them in, so two never wait in a cycle, and
--     prices, room and counters hold until commit;
--  3. price caps and budgets (gpb_grant_costs), then quotas, each counting the tenant's
--     grants before it in the batch as granted;
--  4. its pools' room and active regions, and the policies its tenant planned with (md5
--     of gpb_tenant_policies): all grants in one statement when no pool has idle
--     instances, each counted against its pools' room in batch order (a grant that does
--     not fit still counts, so a later one may be turned away although it would fit);
--     else each in a subtransaction of its own (gpb_grant, idle instances reused first),
--     rolled back alone on GB001.
-- A quota or budget lowered after step 3 is still enforced by the counters' triggers
-- (GB003, GB004): the statement fails, and the broker runs its grants one by one. Keep
-- batches well under 64 (PostgreSQL caches 64 subtransactions per backend). The plan is
-- made once per session (the batch's shape is in the data, not in the statement), with
-- index lookups: PostgreSQL guesses 100 elements per unnest, and at 20,000 pools it
-- hash-joined them with a scan of every pool (grants/s fell to 0.3x of 40 pools).
CREATE FUNCTION gpb_grant_batch(p_grants gpb_planned_grant[])
RETURNS SETOF instances
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off AS $$
DECLARE
    tenant_ids uuid[];
    limited boolean;
    budgeted uuid[];
    capped boolean;
    refused bigint[] := '{}';
    reuse boolean;
    landed instances[];
BEGIN
    IF NOT gpb_grants_complete(p_grants) THEN
        RAISE EXCEPTION 'incomplete planned grant in a batch of %', cardinality(p_grants)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT coalesce(bool_or(locked.idle > 0), false) INTO reuse
    FROM (SELECT pools.idle FROM pools
          WHERE (pools.region_id, pools.id) IN (SELECT p.region, p.pool FROM unnest(p_grants) AS g, unnest(g.placements) AS p)
          ORDER BY pools.region_id, pools.id
          FOR UPDATE) AS locked;
    -- (In no order: what is locked is locked by the statements below, in key order.)
    SELECT array_agg(t.id), coalesce(bool_or(gpb_has_quota_limits(t.quota)), false),
           array_agg(t.id) FILTER (WHERE gpb_has_budget(t.quota)),
           (SELECT bool_or(g.max_price_per_hour IS NOT NULL) FROM unnest(p_grants) AS g)
    INTO tenant_ids, limited, budgeted, capped
    FROM tenants t WHERE t.id IN (SELECT g.tenant_id FROM unnest(p_grants) AS g);
    IF limited OR budgeted IS NOT NULL THEN
        PERFORM 1 FROM tenant_usage WHERE tenant_id = ANY (tenant_ids) ORDER BY tenant_id FOR UPDATE;
    END IF;
    IF budgeted IS NOT NULL THEN
        -- Only the missing rows: an insertion that finds its row is a speculative one paid for nothing.
        INSERT INTO tenant_spend (tenant_id, month)
        SELECT b.id, m.month FROM unnest(budgeted) AS b (id), gpb_month_pieces(now(), now() + interval '1 day') m
        WHERE NOT EXISTS (SELECT 1 FROM tenant_spend s WHERE s.tenant_id = b.id AND s.month = m.month)
        ORDER BY 1, 2
        ON CONFLICT DO NOTHING;
        PERFORM 1 FROM tenant_spend
        WHERE tenant_id = ANY (budgeted) AND month >= (date_trunc('month', now() AT TIME ZONE 'UTC'))::date
        ORDER BY tenant_id, month
        FOR UPDATE;
    END IF;

    IF budgeted IS NOT NULL OR capped THEN
        SELECT coalesce(array_agg(c.n), '{}') INTO refused
        FROM gpb_grant_costs(p_grants) AS c WHERE c.over_cap OR c.problem IS NOT NULL;
    END IF;
    IF limited THEN
        SELECT refused || coalesce(array_agg(checked.n), '{}') INTO refused
        FROM (SELECT g.ordinality AS n,
                     gpb_quota_problem(t.quota, u,
                                       ROW(d.tenant_id, sum(d.instances) OVER w, sum(d.gpus) OVER w,
                                           sum(d.cpu) OVER w, sum(d.memory_gib) OVER w)::tenant_usage) AS problem
              FROM unnest(p_grants) WITH ORDINALITY AS g
              JOIN tenants t ON t.id = g.tenant_id AND gpb_has_quota_limits(t.quota)
              JOIN tenant_usage u ON u.tenant_id = t.id,
                   LATERAL gpb_usage_of(g.tenant_id, g.request, g.placed_replicas) d
              WHERE g.ordinality <> ALL (refused)
              WINDOW w AS (PARTITION BY d.tenant_id ORDER BY g.ordinality)) checked
        WHERE checked.problem IS NOT NULL;
    END IF;

    IF reuse THEN
        FOR k IN 1 .. cardinality(p_grants) LOOP
            CONTINUE WHEN k = ANY (refused);
            landed := NULL;
            BEGIN
                IF NOT gpb_tenant_unchanged((p_grants[k]).tenant_id, (p_grants[k]).policies) THEN
                    RAISE EXCEPTION 'tenant % changed', (p_grants[k]).tenant_id USING ERRCODE = 'GB001';
                END IF;
                -- Collected before returning: rows already returned would survive a rollback.
                SELECT array_agg(i ORDER BY i.seq) INTO landed FROM gpb_grant(p_grants[k]) AS i;
            EXCEPTION WHEN SQLSTATE 'GB001' THEN
                landed := NULL;
            END;
            IF landed IS NOT NULL THEN
                RETURN QUERY SELECT * FROM unnest(landed);
            END IF;
        END LOOP;
        RETURN;
    END IF;

    RETURN QUERY
    WITH grants AS (
        SELECT g.ordinality AS n, g.* FROM unnest(p_grants) WITH ORDINALITY AS g WHERE g.ordinality <> ALL (refused)
    ), placements AS (
        SELECT grants.n, grants.allocation_id, p.ord, p.region AS region_id, p.pool AS pool_id, p.count, p.unit,
               p.vswitches
        FROM grants, unnest(grants.placements) WITH ORDINALITY AS p (region, pool, count, unit, vswitches, ord)
    ), demand AS (
        SELECT placements.*,
               sum(placements.count) OVER (PARTITION BY placements.region_id, placements.pool_id
                                           ORDER BY placements.n, placements.ord)
                   <= pools.capacity - pools.allocated
                   AND regions.state = 'active' AS fits
        FROM placements
        LEFT JOIN pools ON pools.region_id = placements.region_id AND pools.id = placements.pool_id
        LEFT JOIN regions ON regions.id = placements.region_id
    ), tenants_checked AS MATERIALIZED (
        -- Once per tenant, not per grant: a query and an md5 of the tenant's policies.
        -- MATERIALIZED keeps PostgreSQL from pushing the check back below the DISTINCT.
        SELECT b.tenant_id, b.policies, gpb_tenant_unchanged(b.tenant_id, b.policies) AS unchanged
        FROM (SELECT DISTINCT grants.tenant_id, grants.policies FROM grants) AS b
    ), granted AS (
        SELECT grants.* FROM grants
        JOIN tenants_checked tc ON tc.tenant_id = grants.tenant_id AND tc.policies = grants.policies
        WHERE tc.unchanged
          AND NOT EXISTS (SELECT 1 FROM demand WHERE demand.n = grants.n AND coalesce(demand.fits, false) = false)
    ), allocations_added AS (
        INSERT INTO allocations (id, tenant_id, status, request, replicas, placed_replicas, labels, decisions,
                                 lease_seconds, lease_expires_at, created_at, updated_at)
        SELECT granted.allocation_id, granted.tenant_id, granted.status, granted.request, granted.replicas,
               granted.placed_replicas, granted.labels, granted.decisions, granted.lease_seconds,
               now() + make_interval(secs => granted.lease_seconds), now(), now()
        FROM granted ORDER BY granted.n
    ), counters AS (
        UPDATE pools SET allocated = pools.allocated + taken.count, updated_at = now(),
                         changed_xid = pg_current_xact_id()::text::bigint  -- (pools_mark_changed passes over it)
        FROM (SELECT d.region_id, d.pool_id, sum(d.count)::integer AS count
              FROM demand d JOIN granted USING (n) GROUP BY d.region_id, d.pool_id) AS taken
        WHERE pools.region_id = taken.region_id AND pools.id = taken.pool_id
    ), instances_added AS (
        INSERT INTO instances (id, allocation_id, region_id, pool_id, instance_type, gpu_series, gpu_count,
                               cpu, memory_gib, vpc_id, vswitch_id, security_group_id, unit, state, reused,
                               created_at)
        SELECT gen_random_uuid(), d.allocation_id, p.region_id, p.id, p.instance_type, p.gpu_series,
               coalesce(p.gpus_per_instance, 0), p.cpu, p.memory_gib, r.vpc_id, d.vswitches[k],
               r.security_group_id, d.unit, 'running', false, now()
        FROM demand d JOIN granted USING (n)
        CROSS JOIN generate_series(1, d.count) AS k
        JOIN pools p ON p.region_id = d.region_id AND p.id = d.pool_id
        JOIN regions r ON r.id = d.region_id
        ORDER BY d.n, d.ord, k
        RETURNING *
    ), recorded AS (
        INSERT INTO ledger (kind, region_id, pool_id, allocation_id, instance_id, delta, actor)
        SELECT 'reserved', i.region_id, i.pool_id, i.allocation_id, i.id, 1, granted.actor
        FROM instances_added i JOIN granted USING (allocation_id)
        ORDER BY i.seq
    )
    SELECT * FROM instances_added ORDER BY seq;
END
$$;
