-- gpubroker schema, version 5: per-tenant usage counters, kept by triggers in the very
-- statement that changes an instance's state, so a quota is checked against one row
-- instead of the tenant's instances; quotas become a constraint of that row, and
-- grants of tenants with a quota go out in batches like the others. And an index for
-- every list's filters and order, so a page costs the same however long the history.

-- GET /v1/allocations?status= (newest first: read backwards) and GET /v1/admin/tenants.
CREATE INDEX allocations_by_tenant_status ON allocations (tenant_id, status, seq);
CREATE INDEX tenants_by_creation ON tenants (created_at, id);

-- GET /v1/allocations?region=: every region an allocation ever had an instance in, in
-- its tenant's allocation order. Kept by the instances trigger below. (No foreign key:
-- history may be archived.)
CREATE TABLE allocation_regions (
    tenant_id      uuid NOT NULL,
    region_id      text NOT NULL,
    allocation_seq bigint NOT NULL,
    allocation_id  uuid NOT NULL,
    PRIMARY KEY (tenant_id, region_id, allocation_seq)
);
INSERT INTO allocation_regions (tenant_id, region_id, allocation_seq, allocation_id)
SELECT DISTINCT a.tenant_id, i.region_id, a.seq, a.id FROM instances i JOIN allocations a ON a.id = i.allocation_id;

-- What each tenant's running instances use, counted as their requests asked per
-- replica (not the larger instance a replica may land on): what quotas limit.
-- `gpubroker verify` checks the counters against the running instances.
CREATE TABLE tenant_usage (
    tenant_id  uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    instances  integer NOT NULL DEFAULT 0 CHECK (instances >= 0),
    gpus       integer NOT NULL DEFAULT 0 CHECK (gpus >= 0),
    -- numeric, not float: a sum kept by many additions and subtractions stays exact.
    cpu        numeric NOT NULL DEFAULT 0 CHECK (cpu >= 0),
    memory_gib numeric NOT NULL DEFAULT 0 CHECK (memory_gib >= 0)
);

-- What p_replicas replicas of p_request add to tenant p_tenant's usage: the one
-- definition the counters, the quota checks and `gpubroker verify` share.
CREATE FUNCTION gpb_usage_of(p_tenant uuid, p_request jsonb, p_replicas integer)
RETURNS tenant_usage
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN ROW(p_tenant, p_replicas, p_replicas * coalesce((p_request->'shape'->>'gpuCount')::integer, 0),
               p_replicas * (p_request->'shape'->>'cpu')::numeric,
               p_replicas * (p_request->'shape'->>'memoryGiB')::numeric)::tenant_usage;
END
$$;

-- What a grant adds (p_allocation: gpb_grant's first argument).
CREATE FUNCTION gpb_grant_demand(p_allocation jsonb)
RETURNS tenant_usage
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN gpb_usage_of((p_allocation->>'tenantId')::uuid, p_allocation->'request',
                        (p_allocation->>'placedReplicas')::integer);
END
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

INSERT INTO tenant_usage (tenant_id, instances, gpus, cpu, memory_gib)
SELECT t.id, coalesce(sum(d.instances), 0), coalesce(sum(d.gpus), 0), coalesce(sum(d.cpu), 0),
       coalesce(sum(d.memory_gib), 0)
FROM tenants t
LEFT JOIN (SELECT d.* FROM instances i JOIN allocations a ON a.id = i.allocation_id,
                  LATERAL gpb_usage_of(a.tenant_id, a.request, 1) d
           WHERE i.state = 'running') d ON d.tenant_id = t.id
GROUP BY t.id;

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

-- Adds p_changes[k] running instances of allocation p_allocations[k] to its tenant's
-- counters. Tenants are updated in key order, the order gpb_grant_batch locks them
-- in, so two statements never wait for each other's tenants in a cycle.
CREATE FUNCTION gpb_count_usage(p_allocations uuid[], p_changes integer[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT d.tenant_id, sum(d.instances)::integer AS instances, sum(d.gpus)::integer AS gpus,
               sum(d.cpu) AS cpu, sum(d.memory_gib) AS memory_gib
        FROM unnest(p_allocations, p_changes) AS c (allocation_id, n)
        JOIN allocations a ON a.id = c.allocation_id, LATERAL gpb_usage_of(a.tenant_id, a.request, c.n) d
        GROUP BY d.tenant_id ORDER BY d.tenant_id
    LOOP
        UPDATE tenant_usage
        SET instances = instances + t.instances, gpus = gpus + t.gpus, cpu = cpu + t.cpu,
            memory_gib = memory_gib + t.memory_gib
        WHERE tenant_id = t.tenant_id;
    END LOOP;
END
$$;

-- Once per statement on instances: the running instances it added or took away, per
-- allocation, and the regions of new instances. (A trigger with transition tables
-- takes one event, hence three.)
CREATE FUNCTION gpb_instances_changed()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    allocation_ids uuid[];
    changes integer[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO allocation_regions (tenant_id, region_id, allocation_seq, allocation_id)
        SELECT DISTINCT a.tenant_id, n.region_id, a.seq, a.id FROM new_rows n JOIN allocations a ON a.id = n.allocation_id
        ON CONFLICT DO NOTHING;
        SELECT array_agg(allocation_id), array_agg(n) INTO allocation_ids, changes
        FROM (SELECT allocation_id, count(*)::integer AS n FROM new_rows WHERE state = 'running'
              GROUP BY allocation_id) c;
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

-- Batched grants may now be of tenants with a quota: the batch checks it (below), so
-- only the policies need to be as the broker read them.
CREATE OR REPLACE FUNCTION gpb_tenant_unchanged(p_tenant uuid, p_policies text)
RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM tenants t
                   WHERE t.id = p_tenant AND md5(gpb_tenant_policies(t.id)::text) = p_policies);
END
$$;

-- gpb_grant_batch (migration 3) with quotas: locks the pools and then the tenants'
-- counters of the batch, each in key order (the order every statement takes them in),
-- so usage holds until the batch commits, and leaves out every grant that would take
-- its tenant past a quota, counting the tenant's grants before it in the batch as
-- granted. A grant left out returns no rows, like any other: the broker asks
-- gpb_quota_problem whether it was the quota, or plans it again. Whatever would get
-- past this (a quota lowered meanwhile) the tenant_usage trigger refuses (GB003): the
-- statement fails, and the broker runs its grants one by one.
CREATE FUNCTION gpb_grant_batch_within_quotas(p_grants jsonb)
RETURNS SETOF instances
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM pools
    WHERE (region_id, id) IN (SELECT placement->>'region', placement->>'pool'
                              FROM jsonb_array_elements(p_grants) AS grants,
                                   jsonb_array_elements(grants.value->'placements') AS placement)
    ORDER BY region_id, id
    FOR UPDATE;
    PERFORM 1 FROM tenant_usage
    WHERE tenant_id IN (SELECT (value->'allocation'->>'tenantId')::uuid FROM jsonb_array_elements(p_grants))
    ORDER BY tenant_id
    FOR UPDATE;
    SELECT coalesce(jsonb_agg(value ORDER BY n), '[]') INTO p_grants
    FROM (SELECT g.n, g.value,
                 gpb_quota_problem(t.quota, u,
                                   ROW(d.tenant_id, sum(d.instances) OVER w, sum(d.gpus) OVER w,
                                       sum(d.cpu) OVER w, sum(d.memory_gib) OVER w)::tenant_usage) AS problem
          FROM jsonb_array_elements(p_grants) WITH ORDINALITY AS g (value, n),
               LATERAL gpb_grant_demand(g.value->'allocation') d
          LEFT JOIN tenants t ON t.id = d.tenant_id
          LEFT JOIN tenant_usage u ON u.tenant_id = d.tenant_id
          WINDOW w AS (PARTITION BY d.tenant_id ORDER BY g.n)) checked
    WHERE problem IS NULL;
    RETURN QUERY SELECT * FROM gpb_grant_batch(p_grants);
END
$$;
