-- Preemption with notice (migration 17). A victim is warned first: `preempting` with a
-- deadline, still running and holding its capacity (lease, usage and budget count on);
-- at the deadline, or when its tenant releases it or its lease ends first, it stops
-- (`preempted`) and its capacity passes on. These functions are the only writers of
-- both steps, so the immediate case (a notice of 0) and the notified one stop an
-- instance the same way.

-- Stops preempted instances that are still live (running or preempting): counters,
-- victim allocations (partial, with a decision) and `preempted` ledger rows in one
-- statement. The ledger's actor names the preemptor's allocation (tenants see
-- 'preemption'). Returns, per instance stopped, the allocation that waited for its
-- capacity and the victim allocation (which may recover).
CREATE FUNCTION gpb_stop_preempted(p_seqs bigint[], p_actor text)
RETURNS TABLE (waiting uuid, victim uuid)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH taken AS (
        UPDATE instances SET state = 'preempted', ended_at = clock_timestamp()
        WHERE seq = ANY (p_seqs) AND state IN ('running', 'preempting')
        RETURNING id, allocation_id, region_id, pool_id, preempted_for
    ), counters AS (
        UPDATE pools p SET allocated = p.allocated - t.n, updated_at = now()
        FROM (SELECT region_id, pool_id, count(*)::int AS n FROM taken GROUP BY region_id, pool_id) t
        WHERE p.region_id = t.region_id AND p.id = t.pool_id
    ), victims AS (
        UPDATE allocations a
        SET placed_replicas = a.placed_replicas - v.n,
            status = CASE WHEN a.status IN ('active', 'partial') THEN 'partial' ELSE a.status END,
            updated_at = clock_timestamp(),
            decisions = a.decisions || jsonb_build_array(jsonb_build_object(
                'region', '*', 'replicas', 0,
                'reason', format('%s instance(s) preempted by a default-QoS allocation', v.n)))
        FROM (SELECT allocation_id, count(*)::int AS n FROM taken GROUP BY allocation_id) v
        WHERE a.id = v.allocation_id
    ), recorded AS (
        INSERT INTO ledger (kind, region_id, pool_id, allocation_id, instance_id, delta, actor)
        SELECT 'preempted', region_id, pool_id, allocation_id, id, -1,
               p_actor || coalesce(' allocation:' || preempted_for::text, '')
        FROM taken
    )
    SELECT taken.preempted_for, taken.allocation_id FROM taken;
END
$$;

-- Preempts running instances for allocation p_for: each with its QoS's notice
-- (preemption_settings) turns `preempting` until now + notice, with a `preempting`
-- ledger row (delta 0) carrying the deadline, its allocation's event; the others stop at
-- once (gpb_stop_preempted). Returns the latest deadline, NULL when every one stopped.
CREATE FUNCTION gpb_preempt(p_seqs bigint[], p_for uuid, p_actor text)
RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    latest timestamptz;
    immediate bigint[];
BEGIN
    WITH warned AS (
        UPDATE instances i
        SET state = 'preempting', preempted_for = p_for,
            preempt_deadline = clock_timestamp() + make_interval(secs => s.notice_seconds)
        FROM allocations a JOIN preemption_settings s ON s.qos = a.request->'shape'->>'qos'
        WHERE i.seq = ANY (p_seqs) AND i.state = 'running' AND a.id = i.allocation_id AND s.notice_seconds > 0
        RETURNING i.id, i.allocation_id, i.region_id, i.pool_id, i.preempt_deadline
    ), victims AS (
        UPDATE allocations a
        SET updated_at = clock_timestamp(),
            decisions = a.decisions || jsonb_build_array(jsonb_build_object(
                'region', '*', 'replicas', 0,
                'reason', format('%s instance(s) to be preempted at %s', v.n,
                                 to_char(v.deadline AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))))
        FROM (SELECT allocation_id, count(*)::int AS n, max(preempt_deadline) AS deadline FROM warned GROUP BY allocation_id) v
        WHERE a.id = v.allocation_id
    ), recorded AS (
        INSERT INTO ledger (kind, region_id, pool_id, allocation_id, instance_id, delta, actor, deadline)
        SELECT 'preempting', region_id, pool_id, allocation_id, id, 0, p_actor || ' allocation:' || p_for::text,
               preempt_deadline
        FROM warned
    )
    SELECT max(preempt_deadline) INTO latest FROM warned;
    WITH marked AS (
        UPDATE instances SET preempted_for = p_for WHERE seq = ANY (p_seqs) AND state = 'running' RETURNING seq)
    SELECT array_agg(seq) INTO immediate FROM marked;
    IF immediate IS NOT NULL THEN
        PERFORM gpb_stop_preempted(immediate, p_actor);
    END IF;
    RETURN latest;
END
$$;

-- The notice worker's step: up to p_limit preempting instances whose deadline has come,
-- claimed (SKIP LOCKED: brokers split the work), their pools locked in key order (the
-- order gpb_grant_batch takes them in), then stopped. Answers how many stopped, the
-- allocations that waited for their capacity and the victims.
CREATE FUNCTION gpb_end_due_preemptions(p_limit integer, OUT stopped integer, OUT waiting uuid[], OUT victims uuid[])
LANGUAGE plpgsql AS $$
DECLARE
    due bigint[];
BEGIN
    SELECT array_agg(seq) INTO due FROM (
        SELECT seq FROM instances WHERE state = 'preempting' AND preempt_deadline <= clock_timestamp()
        ORDER BY preempt_deadline LIMIT p_limit FOR UPDATE SKIP LOCKED) d;
    stopped := coalesce(cardinality(due), 0);
    waiting := '{}';
    victims := '{}';
    IF due IS NULL THEN
        RETURN;
    END IF;
    PERFORM 1 FROM pools WHERE (region_id, id) IN (SELECT region_id, pool_id FROM instances WHERE seq = ANY (due))
    ORDER BY region_id, id FOR UPDATE;
    SELECT coalesce(array_agg(DISTINCT s.waiting) FILTER (WHERE s.waiting IS NOT NULL), '{}'),
           coalesce(array_agg(DISTINCT s.victim), '{}')
    INTO waiting, victims FROM gpb_stop_preempted(due, 'preemption-notice') AS s;
END
$$;
