-- gpubroker schema, version 5: per-tenant usage counters, kept by triggers (definitions/
-- usage.sql) in the very statement that changes an instance's state, so a quota is
-- checked against one row instead of the tenant's instances. And an index for every
-- list's filters and order, so a page costs the same however long the history.

-- GET /v1/allocations?status= (newest first: read backwards) and GET /v1/admin/tenants.
CREATE INDEX allocations_by_tenant_status ON allocations (tenant_id, status, seq);
CREATE INDEX tenants_by_creation ON tenants (created_at, id);

-- GET /v1/allocations?region=: every region an allocation ever had an instance in, in
-- its tenant's allocation order. Kept by a trigger on instances (definitions/usage.sql). (No foreign key:
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

-- Counted as gpb_usage_of (definitions/usage.sql) counts: per running instance, what its
-- request's shape asks for.
INSERT INTO tenant_usage (tenant_id, instances, gpus, cpu, memory_gib)
SELECT t.id, count(a.id), coalesce(sum(coalesce((a.request->'shape'->>'gpuCount')::integer, 0)), 0),
       coalesce(sum((a.request->'shape'->>'cpu')::numeric), 0), coalesce(sum((a.request->'shape'->>'memoryGiB')::numeric), 0)
FROM tenants t
LEFT JOIN (instances i JOIN allocations a ON a.id = i.allocation_id AND i.state = 'running') ON a.tenant_id = t.id
GROUP BY t.id;
