-- Monthly budgets. A tenant's quota may hold `spendPerMonth` and `gpuHoursPerMonth`
-- (calendar month, UTC). What counts against a month is what the tenant spent in it plus
-- what its live leases commit in it: every running instance up to its allocation's lease
-- expiry, at its pool's price. Counters per tenant and month (tenant_spend) keep that sum,
-- only for tenants with a budget, so a check reads one row; a budget is a constraint on
-- them (SQLSTATE GB004), like quotas (GB003). The grant's checks are in grants.sql.

-- Whether p_quota holds a budget. (The partial index tenants_with_budget repeats the test.)

CREATE FUNCTION gpb_has_budget(p_quota jsonb)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT (p_quota->>'spendPerMonth') IS NOT NULL OR (p_quota->>'gpuHoursPerMonth') IS NOT NULL
$$;

-- [p_from, p_to) cut at UTC month starts: seconds in each month, negative when p_to
-- comes before p_from (a commitment taken back).
CREATE FUNCTION gpb_month_pieces(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (month date, seconds numeric)
LANGUAGE sql STABLE AS $$
    SELECT m::date, b.sign * extract(epoch FROM least(b.hi, (m + interval '1 month') AT TIME ZONE 'UTC')
                                                 - greatest(b.lo, m AT TIME ZONE 'UTC'))
    FROM (SELECT least(p_from, p_to) AS lo, greatest(p_from, p_to) AS hi,
                 CASE WHEN p_to < p_from THEN -1 ELSE 1 END AS sign) b,
         generate_series(date_trunc('month', b.lo AT TIME ZONE 'UTC'),
                         date_trunc('month', (b.hi - interval '1 microsecond') AT TIME ZONE 'UTC'),
                         interval '1 month') AS m
    WHERE b.hi > b.lo
$$;

-- The budget of p_quota that p_adding passes in p_month with p_used already counted,
-- as the client reads it (members of the problem answer), or NULL. Only what is added
-- counts, as with quotas.
CREATE FUNCTION gpb_budget_problem(p_quota jsonb, p_month date, p_used_spend numeric, p_used_gpu_seconds numeric,
                                   p_adding_spend numeric, p_adding_gpu_seconds numeric)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    names text[] := ARRAY['spendPerMonth', 'gpuHoursPerMonth'];
    used numeric[] := ARRAY[p_used_spend, p_used_gpu_seconds];
    adding numeric[] := ARRAY[p_adding_spend, p_adding_gpu_seconds];
    lim numeric;
    u numeric;
    a numeric;
BEGIN
    FOR k IN 1..2 LOOP
        lim := (p_quota->>names[k])::numeric;
        IF adding[k] > 0 AND used[k] + adding[k] > lim * 3600 THEN
            u := round(used[k] / 3600, 6);
            a := round(adding[k] / 3600, 6);
            RETURN jsonb_build_object(
                'budget', names[k], 'month', to_char(p_month, 'YYYY-MM'), 'limit', trim_scale(lim),
                'used', trim_scale(u), 'requested', trim_scale(a),
                'remaining', trim_scale(greatest(round(lim - used[k] / 3600, 6), 0)),
                'detail', format('budget %s for %s: %s spent or committed + %s requested exceeds %s; %s remains',
                                 names[k], to_char(p_month, 'YYYY-MM'), trim_scale(u), trim_scale(a),
                                 trim_scale(lim), trim_scale(greatest(round(lim - used[k] / 3600, 6), 0))));
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- The budget as a constraint: no statement may commit past it (SQLSTATE GB004; the
-- detail is the problem as JSON). Corrections pass. Rows are created empty
-- (gpb_add_spend), so every commitment is an update.
CREATE FUNCTION gpb_enforce_budget()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    problem jsonb;
    rise_spend numeric := NEW.committed_spend - OLD.committed_spend;
    rise_gpu numeric := NEW.committed_gpu_seconds - OLD.committed_gpu_seconds;
BEGIN
    SELECT gpb_budget_problem(t.quota, NEW.month, NEW.committed_spend + NEW.adjusted_spend - rise_spend,
                              NEW.committed_gpu_seconds + NEW.adjusted_gpu_seconds - rise_gpu, rise_spend, rise_gpu)
    INTO problem FROM tenants t WHERE t.id = NEW.tenant_id;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION '%', problem->>'detail' USING ERRCODE = 'GB004', DETAIL = problem::text;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER tenant_spend_within_budget BEFORE UPDATE ON tenant_spend FOR EACH ROW
    WHEN (NEW.committed_spend > OLD.committed_spend OR NEW.committed_gpu_seconds > OLD.committed_gpu_seconds)
    EXECUTE FUNCTION gpb_enforce_budget();

-- Adds, per tenant, p_prices[k] (price per hour, summed over instances) and p_gpus[k]
-- over [p_from[k], p_to[k]) to the months it falls in. p_commit: a rise is a
-- commitment (checked); else every change is a correction. A missing row is created
-- empty first, so that the budget is checked on an update of the locked row. Rows are
-- written in key order, the order the grant batch locks them in.
CREATE FUNCTION gpb_add_spend(p_tenants uuid[], p_from timestamptz[], p_to timestamptz[], p_prices numeric[],
                              p_gpus numeric[], p_commit boolean)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    tenant_ids uuid[];
    months date[];
    spends numeric[];
    gpu_seconds numeric[];
    rise boolean;
BEGIN
    SELECT array_agg(tenant_id ORDER BY tenant_id, month), array_agg(month ORDER BY tenant_id, month),
           array_agg(spend ORDER BY tenant_id, month), array_agg(gpu ORDER BY tenant_id, month)
    INTO tenant_ids, months, spends, gpu_seconds
    FROM (SELECT c.tenant_id, m.month, sum(c.price * m.seconds) AS spend, sum(c.gpus * m.seconds) AS gpu
          FROM unnest(p_tenants, p_from, p_to, p_prices, p_gpus) AS c (tenant_id, t_from, t_to, price, gpus),
               LATERAL gpb_month_pieces(c.t_from, c.t_to) m
          GROUP BY c.tenant_id, m.month) sums
    WHERE spend <> 0 OR gpu <> 0;
    IF tenant_ids IS NULL THEN
        RETURN;
    END IF;
    -- Rows are made only where missing (the grant batch has made and locked its rows), so
    -- the common case pays for no speculative insertion; then each row is updated.
    INSERT INTO tenant_spend (tenant_id, month)
    SELECT c.tenant_id, c.month FROM unnest(tenant_ids, months) AS c (tenant_id, month)
    WHERE NOT EXISTS (SELECT 1 FROM tenant_spend s WHERE s.tenant_id = c.tenant_id AND s.month = c.month)
    ON CONFLICT DO NOTHING;
    FOR k IN 1 .. cardinality(tenant_ids) LOOP
        rise := p_commit AND spends[k] >= 0 AND gpu_seconds[k] >= 0;
        UPDATE tenant_spend
        SET committed_spend = committed_spend + CASE WHEN rise THEN spends[k] ELSE 0 END,
            committed_gpu_seconds = committed_gpu_seconds + CASE WHEN rise THEN gpu_seconds[k] ELSE 0 END,
            adjusted_spend = adjusted_spend + CASE WHEN rise THEN 0 ELSE spends[k] END,
            adjusted_gpu_seconds = adjusted_gpu_seconds + CASE WHEN rise THEN 0 ELSE gpu_seconds[k] END
        WHERE tenant_id = tenant_ids[k] AND month = months[k];
    END LOOP;
END
$$;

-- Instances of budgeted tenants that start running (p_allocations[k], p_regions[k],
-- p_pools[k], p_gpus[k]: one per instance): each commits its pool's price from now to its
-- lease's expiry (an allocation being admitted has no lease yet: its lease trigger
-- commits). Called by the instances INSERT trigger (gpb_instances_changed, usage.sql)
-- after the usage counters, so the tenant's usage row is locked when its budget is read
-- (see gpb_budget_set), and only when a tenant of the statement has a budget: one
-- statement trigger on instances instead of two, and for unbudgeted tenants no join of
-- the new instances to their pools (0.6 M instructions of a grant batch of 16).
CREATE FUNCTION gpb_spend_started(p_allocations uuid[], p_regions text[], p_pools text[], p_gpus integer[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM gpb_add_spend(array_agg(a.tenant_id), array_agg(now()), array_agg(a.lease_expires_at),
                          array_agg(c.n * p.price_per_hour::numeric), array_agg((c.n * c.gpu_count)::numeric), true)
    FROM (SELECT allocation_id, region_id, pool_id, gpu_count, count(*) AS n
          FROM unnest(p_allocations, p_regions, p_pools, p_gpus) AS i (allocation_id, region_id, pool_id, gpu_count)
          GROUP BY allocation_id, region_id, pool_id, gpu_count) c
    JOIN allocations a ON a.id = c.allocation_id
    JOIN tenants t ON t.id = a.tenant_id
    JOIN pools p ON p.region_id = c.region_id AND p.id = c.pool_id
    WHERE a.lease_expires_at IS NOT NULL AND gpb_has_budget(t.quota)
    HAVING count(*) > 0;
END
$$;

-- Instances of budgeted tenants that stop running give back the time from then to the
-- lease's expiry, or charge the time past it until the lease reconciler came. This
-- trigger sorts after instances_usage_update (triggers of one event fire in name order),
-- so the tenant's usage row is locked when its budget is read: see gpb_budget_set.
CREATE FUNCTION gpb_instances_spend()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    tenant_ids uuid[];
    starts timestamptz[];
    ends timestamptz[];
    prices numeric[];
    gpus numeric[];
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tenants WHERE gpb_has_budget(quota)) THEN
        RETURN NULL;
    END IF;
    SELECT array_agg(a.tenant_id), array_agg(a.lease_expires_at), array_agg(now()),
           array_agg(c.n * p.price_per_hour::numeric), array_agg((c.n * c.gpu_count)::numeric)
    INTO tenant_ids, starts, ends, prices, gpus
    FROM (SELECT o.allocation_id, o.region_id, o.pool_id, o.gpu_count, count(*) AS n
          FROM old_rows o JOIN new_rows n ON n.seq = o.seq
          WHERE o.state = 'running' AND n.state <> 'running'
          GROUP BY o.allocation_id, o.region_id, o.pool_id, o.gpu_count) c
    JOIN allocations a ON a.id = c.allocation_id
    JOIN tenants t ON t.id = a.tenant_id
    JOIN pools p ON p.region_id = c.region_id AND p.id = c.pool_id
    WHERE a.lease_expires_at IS NOT NULL AND gpb_has_budget(t.quota);
    IF tenant_ids IS NOT NULL THEN
        PERFORM gpb_add_spend(tenant_ids, starts, ends, prices, gpus, false);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER instances_usage_update_spend AFTER UPDATE ON instances
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gpb_instances_spend();

-- A lease set (admission) or moved (renewal): the running instances commit the
-- difference; a lease shortened gives it back.
CREATE FUNCTION gpb_lease_spend()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tenants WHERE id = NEW.tenant_id AND gpb_has_budget(quota)) THEN
        RETURN NULL;
    END IF;
    PERFORM gpb_add_spend(array_agg(NEW.tenant_id), array_agg(coalesce(OLD.lease_expires_at, now())),
                          array_agg(NEW.lease_expires_at), array_agg(c.n * p.price_per_hour::numeric),
                          array_agg((c.n * c.gpu_count)::numeric), true)
    FROM (SELECT region_id, pool_id, gpu_count, count(*) AS n FROM instances
          WHERE allocation_id = NEW.id AND state = 'running' GROUP BY region_id, pool_id, gpu_count) c
    JOIN pools p ON p.region_id = c.region_id AND p.id = c.pool_id
    HAVING count(*) > 0;
    RETURN NULL;
END
$$;
CREATE TRIGGER allocations_lease_spend AFTER UPDATE OF lease_expires_at ON allocations FOR EACH ROW
    WHEN (NEW.status IN ('active', 'partial') AND NEW.lease_expires_at IS NOT NULL
          AND OLD.lease_expires_at IS DISTINCT FROM NEW.lease_expires_at)
    EXECUTE FUNCTION gpb_lease_spend();

-- A new price applies to what running instances have left of their leases.
CREATE FUNCTION gpb_price_spend()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tenants WHERE gpb_has_budget(quota)) THEN
        RETURN NULL;
    END IF;
    PERFORM gpb_add_spend(array_agg(a.tenant_id), array_agg(now()), array_agg(a.lease_expires_at),
                          array_agg(c.n * (NEW.price_per_hour::numeric - OLD.price_per_hour::numeric)),
                          array_agg(0::numeric), false)
    FROM (SELECT allocation_id, count(*) AS n FROM instances
          WHERE region_id = NEW.region_id AND pool_id = NEW.id AND state = 'running' GROUP BY allocation_id) c
    JOIN allocations a ON a.id = c.allocation_id JOIN tenants t ON t.id = a.tenant_id
    WHERE a.lease_expires_at IS NOT NULL AND gpb_has_budget(t.quota)
    HAVING count(*) > 0;
    RETURN NULL;
END
$$;
CREATE TRIGGER pools_price_spend AFTER UPDATE OF price_per_hour ON pools FOR EACH ROW
    WHEN (OLD.price_per_hour IS DISTINCT FROM NEW.price_per_hour)
    EXECUTE FUNCTION gpb_price_spend();

-- A budget set where there was none: the counters start from the ledger (this month's
-- spend, gpb_charged_intervals of money.sql) and the live leases' commitments, as
-- corrections. Renewals wait on their allocation and instance changes on the usage row,
-- both locked first, so nothing commits unseen meanwhile. A budget removed drops them.
CREATE FUNCTION gpb_budget_set()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    month_start timestamptz := date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
BEGIN
    -- Allocations first: a scale-out holds its allocation when it reaches the usage row.
    PERFORM 1 FROM allocations WHERE tenant_id = NEW.id AND status IN ('active', 'partial') FOR SHARE;
    PERFORM 1 FROM tenant_usage WHERE tenant_id = NEW.id FOR UPDATE;
    DELETE FROM tenant_spend WHERE tenant_id = NEW.id;
    IF NOT gpb_has_budget(NEW.quota) THEN
        RETURN NULL;
    END IF;
    INSERT INTO tenant_spend (tenant_id, month, adjusted_spend, adjusted_gpu_seconds)
    SELECT NEW.id, (month_start AT TIME ZONE 'UTC')::date, coalesce(sum(cost::numeric * 3600), 0),
           coalesce(sum(seconds * gpu_count), 0)
    FROM gpb_charged_intervals(month_start, now(), NEW.id);
    PERFORM gpb_add_spend(array_agg(a.tenant_id), array_agg(now()), array_agg(a.lease_expires_at),
                          array_agg(c.n * p.price_per_hour::numeric), array_agg((c.n * c.gpu_count)::numeric), false)
    FROM (SELECT allocation_id, region_id, pool_id, gpu_count, count(*) AS n FROM instances i
          WHERE state = 'running' AND allocation_id IN (SELECT id FROM allocations WHERE tenant_id = NEW.id)
          GROUP BY allocation_id, region_id, pool_id, gpu_count) c
    JOIN allocations a ON a.id = c.allocation_id
    JOIN pools p ON p.region_id = c.region_id AND p.id = c.pool_id
    WHERE a.lease_expires_at IS NOT NULL
    HAVING count(*) > 0;
    RETURN NULL;
END
$$;
CREATE TRIGGER tenants_budget_set AFTER UPDATE OF quota ON tenants FOR EACH ROW
    WHEN (gpb_has_budget(OLD.quota) IS DISTINCT FROM gpb_has_budget(NEW.quota))
    EXECUTE FUNCTION gpb_budget_set();
