-- gpubroker schema, version 2: the reservation step as server-side functions, so a
-- grant costs one round trip instead of one per statement. They are called inside the
-- caller's transaction (or as a single autocommit statement) and raise SQLSTATE GB001
-- when a pool no longer has what the plan counted on: the caller plans again.

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
