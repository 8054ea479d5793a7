-- Per-tenant usage counters (tenant_usage), kept by triggers in the very statement that
-- changes an instance's state, so a quota is checked against one row instead of the
-- tenant's instances, and a quota is a constraint of that row.

-- What p_replicas replicas of p_request add to tenant p_tenant's usage: the one
-- definition the counters, the quota checks and `gpubroker verify` share. The shape's
-- members are read by key; gpb_grants_complete (grants.sql) checks that a granted
-- request has them as numbers. SQL, not plpgsql: PostgreSQL inlines it into the
-- statement that calls it (no call per allocation).
CREATE FUNCTION gpb_usage_of(p_tenant uuid, p_request jsonb, p_replicas integer)
RETURNS tenant_usage
LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(p_tenant, p_replicas, p_replicas * coalesce((p_request->'shape'->>'gpuCount')::integer, 0),
               p_replicas * (p_request->'shape'->>'cpu')::numeric,
               p_replicas * (p_request->'shape'->>'memoryGiB')::numeric)::tenant_usage
$$;

-- The first limit of p_quota that p_used plus p_adding passes, as the client reads it,
-- or NULL. Only what is added counts: a request that adds no GPUs is not refused
-- because the GPUs in use exceed a quota lowered since.
CREATE FUNCTION gpb_quota_problem(p_quota jsonb, p_used tenant_usage, p_adding tenant_usage)
RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    names text[] := ARRAY['instances', 'gpus', 'cpu', 'memoryGiB'];
    used numeric[] := ARRAY[p_used.instances, p_used.gpus, p_used.cpu, p_used.memory_gib];
    adding numeric[] := ARRAY[p_adding.instances, p_adding.gpus, p_adding.cpu, p_adding.memory_gib];
    lim numeric;
BEGIN
    FOR k IN 1..4 LOOP
        lim := (p_quota->>names[k])::numeric;
        IF adding[k] > 0 AND used[k] + adding[k] > lim THEN
            RETURN format('quota %s: %s in use + %s requested exceeds the limit of %s',
                          names[k], trim_scale(used[k]), trim_scale(adding[k]), trim_scale(lim));
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- Whether p_quota limits what a tenant may run (what gpb_quota_problem checks); other
-- members (budgets, budgets.sql) do not count.
CREATE FUNCTION gpb_has_quota_limits(p_quota jsonb)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT (p_quota->>'instances') IS NOT NULL OR (p_quota->>'gpus') IS NOT NULL OR (p_quota->>'cpu') IS NOT NULL
        OR (p_quota->>'memoryGiB') IS NOT NULL
$$;

-- Every tenant has its counters row from the start.
CREATE FUNCTION gpb_tenant_created()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tenant_usage (tenant_id) VALUES (NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER tenants_usage_row AFTER INSERT ON tenants FOR EACH ROW EXECUTE FUNCTION gpb_tenant_created();

-- The quota as a constraint: no statement may raise a tenant's usage past it
-- (SQLSTATE GB003, the message says which limit). Usage may fall while above a
-- quota lowered since.
CREATE FUNCTION gpb_enforce_quota()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    problem text;
BEGIN
    SELECT gpb_quota_problem(t.quota, OLD,
                             ROW(NEW.tenant_id, NEW.instances - OLD.instances, NEW.gpus - OLD.gpus,
                                 NEW.cpu - OLD.cpu, NEW.memory_gib - OLD.memory_gib)::tenant_usage)
    INTO problem FROM tenants t WHERE t.id = NEW.tenant_id;
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION '%', problem USING ERRCODE = 'GB003';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER tenant_usage_within_quota BEFORE UPDATE ON tenant_usage FOR EACH ROW
    WHEN (NEW.instances > OLD.instances OR NEW.gpus > OLD.gpus OR NEW.cpu > OLD.cpu OR NEW.memory_gib > OLD.memory_gib)
    EXECUTE FUNCTION gpb_enforce_quota();

-- Adds p_usage (one row per tenant, any order) to the tenants' counters, in tenant key
-- order, the order the grant batch locks them in, so two statements never wait for
-- each other's tenants in a cycle.
CREATE FUNCTION gpb_add_usage(p_usage tenant_usage[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t tenant_usage;
BEGIN
    FOR t IN SELECT * FROM unnest(p_usage) ORDER BY tenant_id LOOP
        UPDATE tenant_usage
        SET instances = instances + t.instances, gpus = gpus + t.gpus, cpu = cpu + t.cpu,
            memory_gib = memory_gib + t.memory_gib
        WHERE tenant_id = t.tenant_id;
    END LOOP;
END
$$;

-- Adds p_changes[k] running instances of allocation p_allocations[k] to its tenant's
-- counters.
CREATE FUNCTION gpb_count_usage(p_allocations uuid[], p_changes integer[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    usage tenant_usage[];
BEGIN
    SELECT array_agg(ROW(d.tenant_id, d.instances, d.gpus, d.cpu, d.memory_gib)::tenant_usage) INTO usage
    FROM (SELECT d.tenant_id, sum(d.instances)::integer AS instances, sum(d.gpus)::integer AS gpus,
                 sum(d.cpu) AS cpu, sum(d.memory_gib) AS memory_gib
          FROM unnest(p_allocations, p_changes) AS c (allocation_id, n)
          JOIN allocations a ON a.id = c.allocation_id, LATERAL gpb_usage_of(a.tenant_id, a.request, c.n) d
          GROUP BY d.tenant_id) d;
    IF usage IS NOT NULL THEN
        PERFORM gpb_add_usage(usage);
    END IF;
END
$$;

-- Once per statement on instances: the running instances it added or took away, per
-- allocation, and (for new instances) the regions listed in allocation_regions. The
-- INSERT branch (every grant) is one statement: the new instances are joined to their
-- allocations once, for the regions listed and the usage counted. A region already listed
-- is left out by NOT EXISTS, not ON CONFLICT (whose speculative insertion cost the grant
-- batch about 0.5 M instructions): an allocation of the batch is new, and every path
-- that adds instances to an existing allocation locks its row first (scale, admission),
-- so no two statements list the same pair at once. New running instances of a budgeted
-- tenant commit its spend (gpb_spend_started, budgets.sql). (A trigger with transition
-- tables takes one event, hence three triggers.)
CREATE FUNCTION gpb_instances_changed()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    allocation_ids uuid[];
    changes integer[];
    usage tenant_usage[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        WITH added AS (
            SELECT a.id, a.tenant_id, a.seq, a.request, n.region_id,
                   count(*) FILTER (WHERE n.state = 'running')::integer AS running
            FROM new_rows n JOIN allocations a ON a.id = n.allocation_id
            GROUP BY a.id, n.region_id
        ), listed AS (
            INSERT INTO allocation_regions (tenant_id, region_id, allocation_seq, allocation_id)
            SELECT added.tenant_id, added.region_id, added.seq, added.id FROM added
            WHERE NOT EXISTS (SELECT 1 FROM allocation_regions r
                              WHERE r.tenant_id = added.tenant_id AND r.region_id = added.region_id
                                AND r.allocation_seq = added.seq)
        )
        SELECT array_agg(ROW(d.tenant_id, d.instances, d.gpus, d.cpu, d.memory_gib)::tenant_usage) INTO usage
        FROM (SELECT d.tenant_id, sum(d.instances)::integer AS instances, sum(d.gpus)::integer AS gpus,
                     sum(d.cpu) AS cpu, sum(d.memory_gib) AS memory_gib
              FROM added, LATERAL gpb_usage_of(added.tenant_id, added.request, added.running) d
              WHERE added.running > 0
              GROUP BY d.tenant_id) d;
        IF usage IS NOT NULL THEN
            PERFORM gpb_add_usage(usage);
            -- Budgets (budgets.sql), after the counters: only a budgeted tenant's instances
            -- commit spend, and most tenants have no budget.
            IF EXISTS (SELECT 1 FROM tenants t
                       WHERE t.id IN (SELECT u.tenant_id FROM unnest(usage) AS u) AND gpb_has_budget(t.quota)) THEN
                PERFORM gpb_spend_started(array_agg(allocation_id), array_agg(region_id), array_agg(pool_id),
                                          array_agg(gpu_count))
                FROM new_rows WHERE state = 'running';
            END IF;
        END IF;
        RETURN NULL;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT array_agg(allocation_id), array_agg(n) INTO allocation_ids, changes
        FROM (SELECT allocation_id, sum(n)::integer AS n
              FROM (SELECT allocation_id, 1 AS n FROM new_rows WHERE state = 'running'
                    UNION ALL
                    SELECT allocation_id, -1 FROM old_rows WHERE state = 'running') rows
              GROUP BY allocation_id HAVING sum(n) <> 0) c;
    ELSE
        SELECT array_agg(allocation_id), array_agg(n) INTO allocation_ids, changes
        FROM (SELECT allocation_id, -count(*)::integer AS n FROM old_rows WHERE state = 'running'
              GROUP BY allocation_id) c;
    END IF;
    IF allocation_ids IS NOT NULL THEN
        PERFORM gpb_count_usage(allocation_ids, changes);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER instances_usage_insert AFTER INSERT ON instances
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gpb_instances_changed();
CREATE TRIGGER instances_usage_update AFTER UPDATE ON instances
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gpb_instances_changed();
CREATE TRIGGER instances_usage_delete AFTER DELETE ON instances
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION gpb_instances_changed();
