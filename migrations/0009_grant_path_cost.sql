-- gpubroker schema, version 9: a grant batch's cost in PostgreSQL back near what it was
-- before versions 4-8, with every promise those versions made kept. Measured in
-- instructions per batch statement (callgrind on a single-user backend, which other
-- load on the machine does not change): see docs/PERFORMANCE-ANALYSIS.md, 2026-11-26.

-- Version 4's pools_qos_known called gpb_valid_qos, a SQL function that counted distinct
-- values with a subquery: PostgreSQL could not inline it, so it was planned again in every
-- statement that updates a pool (every grant batch) and run once per pool row. The
-- same rule written in the constraint: only two values are known, so the values are
-- distinct when their count equals the number of known values present.
ALTER TABLE pools
    DROP CONSTRAINT pools_qos_known,
    ADD CONSTRAINT pools_qos_known CHECK (
        coalesce(array_ndims(qos), 0) = 1
        AND qos <@ ARRAY['default', 'best-effort']
        AND cardinality(qos) = ('default' = ANY (qos))::integer + ('best-effort' = ANY (qos))::integer);
DROP FUNCTION gpb_valid_qos(text[]);

-- Adds p_usage (one row per tenant, any order) to the tenants' counters, in tenant key
-- order, the order gpb_grant_batch locks them in, so two statements never wait for
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

-- Version 5's gpb_count_usage, its update loop now gpb_add_usage.
CREATE OR REPLACE FUNCTION gpb_count_usage(p_allocations uuid[], p_changes integer[])
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

-- Version 5's gpb_instances_changed with its INSERT branch (every grant) in one
-- statement: the new instances are joined to their allocations once, for the regions
-- listed and the usage counted, instead of once for each in three statements.
CREATE OR REPLACE FUNCTION gpb_instances_changed()
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
            SELECT tenant_id, region_id, seq, id FROM added
            ON CONFLICT DO NOTHING
        )
        SELECT array_agg(ROW(d.tenant_id, d.instances, d.gpus, d.cpu, d.memory_gib)::tenant_usage) INTO usage
        FROM (SELECT d.tenant_id, sum(d.instances)::integer AS instances, sum(d.gpus)::integer AS gpus,
                     sum(d.cpu) AS cpu, sum(d.memory_gib) AS memory_gib
              FROM added, LATERAL gpb_usage_of(added.tenant_id, added.request, added.running) d
              WHERE added.running > 0
              GROUP BY d.tenant_id) d;
        IF usage IS NOT NULL THEN
            PERFORM gpb_add_usage(usage);
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

-- Version 3's gpb_grant_fresh, checking each tenant of the batch once (with its policies'
-- md5) instead of once per grant: gpb_tenant_unchanged runs a query and hashes the
-- tenant's policies, about a seventh of a grant's cost in a batch of 16. MATERIALIZED
-- keeps PostgreSQL from pushing the check back below the DISTINCT.
CREATE OR REPLACE FUNCTION gpb_grant_fresh(p_grants jsonb)
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

-- Whether p_quota limits what a tenant may run (what gpb_quota_problem checks); other
-- members (budgets, migration 10) do not count.
CREATE FUNCTION gpb_has_quota_limits(p_quota jsonb)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT (p_quota->>'instances') IS NOT NULL OR (p_quota->>'gpus') IS NOT NULL OR (p_quota->>'cpu') IS NOT NULL
        OR (p_quota->>'memoryGiB') IS NOT NULL
$$;

-- Version 5's gpb_grant_batch_within_quotas, which did its quota work for every batch:
-- it locked the pools (which gpb_grant_batch locks again) and the tenants' counters,
-- computed every grant's demand, and rebuilt the batch's JSON, a third of a batch's
-- cost for tenants without a quota. Now that work is done only for a batch with a
-- tenant that has a quota, and the JSON rebuilt only when a grant is left out. A quota
-- set after the check below is still enforced: the counters' trigger refuses it
-- (GB003), the statement fails, and the broker runs its grants one by one.
CREATE OR REPLACE FUNCTION gpb_grant_batch_within_quotas(p_grants jsonb)
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

-- Version 6's pools_notify_changed as two triggers with the same effect (two
-- notifications in one transaction fold into one). PostgreSQL reads and prepares a
-- trigger's WHEN clause once per statement that may fire it; a trigger with a column
-- list is passed over by an UPDATE that sets none of its columns. A grant's UPDATE sets
-- `allocated` and `updated_at`, so it no longer prepares the long WHEN clause of the
-- inventory columns.
DROP TRIGGER pools_notify_changed ON pools;
CREATE TRIGGER pools_notify_freed AFTER UPDATE OF allocated, idle ON pools
    FOR EACH ROW
    WHEN (NEW.allocated < OLD.allocated OR NEW.idle > OLD.idle)
    EXECUTE FUNCTION gpb_notify_inventory();
CREATE TRIGGER pools_notify_changed AFTER UPDATE OF capacity, compute_class, qos, gpu_series, gpu_memory_gib,
        gpus_per_instance, cpu, memory_gib, instance_type, price_per_hour, defer_scale_in_seconds ON pools
    FOR EACH ROW
    WHEN ((OLD.capacity, OLD.compute_class, OLD.qos, OLD.gpu_series, OLD.gpu_memory_gib, OLD.gpus_per_instance,
           OLD.cpu, OLD.memory_gib, OLD.instance_type, OLD.price_per_hour, OLD.defer_scale_in_seconds)
          IS DISTINCT FROM
          (NEW.capacity, NEW.compute_class, NEW.qos, NEW.gpu_series, NEW.gpu_memory_gib, NEW.gpus_per_instance,
           NEW.cpu, NEW.memory_gib, NEW.instance_type, NEW.price_per_hour, NEW.defer_scale_in_seconds))
    EXECUTE FUNCTION gpb_notify_inventory();
