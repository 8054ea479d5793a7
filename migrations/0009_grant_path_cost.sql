-- gpubroker schema, version 9: a grant batch's cost in PostgreSQL back near what it was
-- before versions 4-8, with every promise those versions made kept. Measured in
-- instructions per batch statement (callgrind on a single-user backend, which other
-- load on the machine does not change): see docs/PERFORMANCE-ANALYSIS.md, 2026-11-26.

-- Version 4's gpb_valid_qos counted distinct values with a subquery, so PostgreSQL could
-- not inline it and ran it as a SQL function, planned again in every statement that
-- updates a pool (every grant batch) and executed once per pool row. The same rule
-- without a subquery is inlined into the CHECK: only two values are known, so the
-- values are distinct when their count equals the number of known values present.
CREATE OR REPLACE FUNCTION gpb_valid_qos(p_qos text[])
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_ndims(p_qos), 0) = 1
       AND p_qos <@ ARRAY['default', 'best-effort']
       AND cardinality(p_qos) = ('default' = ANY (p_qos))::integer + ('best-effort' = ANY (p_qos))::integer
$$;

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
    IF EXISTS (SELECT 1 FROM tenants t WHERE t.id = ANY (tenant_ids) AND jsonb_strip_nulls(t.quota) <> '{}') THEN
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
              FROM jsonb_array_elements(p_grants) WITH ORDINALITY AS g (value, n),
                   LATERAL gpb_grant_demand(g.value->'allocation') d
              JOIN tenants t ON t.id = d.tenant_id
              JOIN tenant_usage u ON u.tenant_id = d.tenant_id
              WHERE jsonb_strip_nulls(t.quota) <> '{}'
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
