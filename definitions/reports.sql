-- Reports from the real world (migration 17): instances lost (interrupted by a spot
-- reclaim, or failed to start) and pools out of stock for a cool-down.

-- Takes lost instances out of service: live ones (running, preempting, or idle and warm)
-- turn p_kind ('interrupted' or 'failedToStart'), their pools' counters fall, a ledger
-- row of p_kind (delta -1) each, and the allocations they served shrink (partial, with
-- a decision that says why). Instances no longer live are left alone: reporting one
-- twice counts it once. Returns the instances taken, with their allocation (NULL for an
-- idle one, which served none) and the allocation that waited for a preempting one.
CREATE FUNCTION gpb_report_lost(p_ids uuid[], p_kind text, p_reason text, p_actor text)
RETURNS TABLE (instance_id uuid, allocation_id uuid, waiting uuid)
LANGUAGE plpgsql AS $$
DECLARE
    live bigint[];
    idle bigint[];
BEGIN
    IF p_kind NOT IN ('interrupted', 'failedToStart') THEN
        RAISE EXCEPTION 'not a lost instance''s state: %', p_kind USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT array_agg(l.seq), coalesce(array_agg(l.seq) FILTER (WHERE l.state = 'idle'), '{}') INTO live, idle
    FROM (SELECT i.seq, i.state FROM instances i
          WHERE i.id = ANY (p_ids) AND i.state IN ('running', 'preempting', 'idle')
          ORDER BY i.seq FOR UPDATE) l;
    IF live IS NULL THEN
        RETURN;
    END IF;
    PERFORM 1 FROM pools WHERE (region_id, id) IN (SELECT region_id, pool_id FROM instances WHERE seq = ANY (live))
    ORDER BY region_id, id FOR UPDATE;
    RETURN QUERY
    WITH lost AS (
        UPDATE instances i SET state = p_kind, ended_at = clock_timestamp()
        WHERE i.seq = ANY (live)
        RETURNING i.id, i.allocation_id, i.region_id, i.pool_id, i.preempted_for, i.seq = ANY (idle) AS was_idle
    ), counters AS (
        UPDATE pools p SET allocated = p.allocated - t.n, idle = p.idle - t.idled, updated_at = now()
        FROM (SELECT region_id, pool_id, count(*)::int AS n, count(*) FILTER (WHERE was_idle)::int AS idled
              FROM lost GROUP BY region_id, pool_id) t
        WHERE p.region_id = t.region_id AND p.id = t.pool_id
    ), shrunk AS (
        UPDATE allocations a
        SET placed_replicas = a.placed_replicas - v.n,
            status = CASE WHEN a.status IN ('active', 'partial') THEN 'partial' ELSE a.status END,
            updated_at = clock_timestamp(),
            decisions = a.decisions || jsonb_build_array(jsonb_build_object(
                'region', '*', 'replicas', 0,
                'reason', format('%s instance(s) %s', v.n, CASE p_kind WHEN 'interrupted' THEN 'interrupted' ELSE 'failed to start' END)
                          || coalesce(': ' || nullif(p_reason, ''), '')))
        FROM (SELECT lost.allocation_id, count(*)::int AS n FROM lost WHERE NOT was_idle GROUP BY lost.allocation_id) v
        WHERE a.id = v.allocation_id
    ), recorded AS (
        INSERT INTO ledger (kind, region_id, pool_id, allocation_id, instance_id, delta, actor)
        SELECT p_kind, lost.region_id, lost.pool_id, lost.allocation_id, lost.id, -1, p_actor FROM lost
    )
    SELECT lost.id, CASE WHEN lost.was_idle THEN NULL ELSE lost.allocation_id END, lost.preempted_for FROM lost;
END
$$;

-- A pool out of stock until p_until: it offers at most p_available (nothing held is taken
-- away; grants check allocated + n <= capacity). A second report while one holds keeps
-- the capacity to restore and the later end. Returns false when the pool does not exist.
CREATE FUNCTION gpb_report_out_of_stock(p_region text, p_pool text, p_available integer, p_until timestamptz,
                                        p_reason text, p_report text)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pool_stockouts (region_id, pool_id, restore_capacity, available, until, reason, report_id)
    SELECT p.region_id, p.id, p.capacity, p_available, p_until, p_reason, p_report
    FROM pools p WHERE p.region_id = p_region AND p.id = p_pool
    ON CONFLICT (region_id, pool_id) DO UPDATE
        SET available = excluded.available, until = greatest(pool_stockouts.until, excluded.until),
            reason = excluded.reason, report_id = excluded.report_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE pools SET capacity = least(s.restore_capacity, s.available), updated_at = now()
    FROM pool_stockouts s
    WHERE s.region_id = p_region AND s.pool_id = p_pool AND pools.region_id = s.region_id AND pools.id = s.pool_id;
    RETURN true;
END
$$;

-- An inventory report (a pool written by the admin) during a cool-down: the reported
-- capacity becomes what the pool returns to, and it keeps offering no more than the
-- stock-out allows until then.
CREATE FUNCTION gpb_pool_reported_during_stockout()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    held pool_stockouts;
BEGIN
    IF NEW.capacity = OLD.capacity THEN
        RETURN NEW;
    END IF;
    SELECT * INTO held FROM pool_stockouts WHERE region_id = NEW.region_id AND pool_id = NEW.id;
    IF FOUND AND NEW.capacity <> least(held.restore_capacity, held.available) THEN
        UPDATE pool_stockouts SET restore_capacity = NEW.capacity WHERE region_id = NEW.region_id AND pool_id = NEW.id;
        NEW.capacity := least(NEW.capacity, held.available);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER pools_stockout_capacity
    BEFORE UPDATE OF capacity ON pools
    FOR EACH ROW WHEN (pg_trigger_depth() = 0) EXECUTE FUNCTION gpb_pool_reported_during_stockout();

-- The cool-down worker's step: stock-outs whose end has come give their pools back the
-- capacity last reported (removed first, so that pools_stockout_capacity lets the
-- capacity through). Returns how many ended.
CREATE FUNCTION gpb_end_stockouts()
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    regions text[];
    pool_ids text[];
    capacities integer[];
BEGIN
    WITH due AS (
        DELETE FROM pool_stockouts WHERE (region_id, pool_id) IN (
            SELECT region_id, pool_id FROM pool_stockouts WHERE until <= clock_timestamp()
            ORDER BY region_id, pool_id FOR UPDATE SKIP LOCKED)
        RETURNING region_id, pool_id, restore_capacity
    )
    SELECT array_agg(region_id), array_agg(pool_id), array_agg(restore_capacity) INTO regions, pool_ids, capacities
    FROM due;
    IF regions IS NULL THEN
        RETURN 0;
    END IF;
    UPDATE pools p SET capacity = d.capacity, updated_at = now()
    FROM unnest(regions, pool_ids, capacities) AS d (region_id, pool_id, capacity)
    WHERE p.region_id = d.region_id AND p.id = d.pool_id;
    RETURN cardinality(regions);
END
$$;
