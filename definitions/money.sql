-- Money: every price a pool has had (pool_prices, kept by triggers on pools, so no writer
-- can forget it), and the charged intervals of instances computed from the ledger, priced
-- at the price in force while each instance ran: what the usage report and the spend
-- metrics add up.

-- clock_timestamp(), like the ledger's `at`: intervals and prices are compared on one
-- clock. A second change in the same microsecond replaces the first.
CREATE FUNCTION gpb_record_price()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pool_prices (region_id, pool_id, effective_from, price_per_hour)
    VALUES (NEW.region_id, NEW.id, clock_timestamp(), NEW.price_per_hour)
    ON CONFLICT (region_id, pool_id, effective_from) DO UPDATE SET price_per_hour = excluded.price_per_hour;
    RETURN NULL;
END
$$;
CREATE TRIGGER pools_price_created AFTER INSERT ON pools
    FOR EACH ROW EXECUTE FUNCTION gpb_record_price();
-- Only when the price is written and differs: grants update pool counters, never this.
CREATE TRIGGER pools_price_changed AFTER UPDATE OF price_per_hour ON pools
    FOR EACH ROW WHEN (OLD.price_per_hour IS DISTINCT FROM NEW.price_per_hour)
    EXECUTE FUNCTION gpb_record_price();

-- What tenants are charged for between p_from and p_to, in pieces that each lie in
-- one UTC day and under one price: an instance is charged from its `reserved` ledger
-- row (a grant, or the reuse of a warm instance) to the next `released`, `expired` or
-- `preempted` row of the same allocation and instance, or up to p_to while it runs.
-- Idle warm time is charged to no one: it lies between an end row and the next
-- allocation's `reserved` row. p_tenant NULL: every tenant. Seconds are numeric, so
-- sums are exact to the microsecond.
CREATE FUNCTION gpb_charged_intervals(p_from timestamptz, p_to timestamptz, p_tenant uuid)
RETURNS TABLE (tenant_id uuid, region_id text, pool_id text, gpu_series text, qos text, gpu_count integer,
               day date, seconds numeric, cost double precision)
LANGUAGE sql STABLE AS $$
    WITH marks AS (
        -- Rows at or after p_to are left out: an instance that ends later runs up to p_to.
        SELECT l.seq, l.kind, l.at, l.region_id, l.pool_id, l.allocation_id, l.instance_id,
               lead(l.at) OVER (PARTITION BY l.allocation_id, l.instance_id ORDER BY l.seq) AS ended_at
        FROM ledger l
        WHERE l.instance_id IS NOT NULL AND l.kind IN ('reserved', 'released', 'expired', 'preempted', 'interrupted', 'failedToStart')
          AND l.at < p_to
          AND (p_tenant IS NULL OR l.allocation_id IN (SELECT id FROM allocations WHERE tenant_id = p_tenant))
    ), charged AS (
        SELECT m.*, greatest(m.at, p_from) AS starts, least(coalesce(m.ended_at, p_to), p_to) AS ends
        FROM marks m
        WHERE m.kind = 'reserved' AND coalesce(m.ended_at, p_to) > p_from
    ), prices AS (
        SELECT pp.*, lead(pp.effective_from, 1, 'infinity') OVER (
                   PARTITION BY pp.region_id, pp.pool_id ORDER BY pp.effective_from) AS effective_to
        FROM pool_prices pp
    ), priced AS (
        SELECT c.allocation_id, c.instance_id, c.region_id, c.pool_id, p.price_per_hour,
               greatest(c.starts, p.effective_from) AS starts, least(c.ends, p.effective_to) AS ends
        FROM charged c
        JOIN prices p ON p.region_id = c.region_id AND p.pool_id = c.pool_id
                     AND p.effective_from < c.ends AND p.effective_to > c.starts
    ), pieces AS (
        SELECT pr.*, d.day,
               greatest(pr.starts, d.day::timestamp AT TIME ZONE 'UTC') AS piece_starts,
               least(pr.ends, (d.day + 1)::timestamp AT TIME ZONE 'UTC') AS piece_ends
        FROM priced pr
        CROSS JOIN LATERAL (
            SELECT generate_series((pr.starts AT TIME ZONE 'UTC')::date,
                                   ((pr.ends - interval '1 microsecond') AT TIME ZONE 'UTC')::date,
                                   interval '1 day')::date AS day
        ) d
        WHERE pr.ends > pr.starts
    )
    SELECT a.tenant_id, pc.region_id, pc.pool_id, i.gpu_series, a.request->'shape'->>'qos', i.gpu_count, pc.day,
           extract(epoch FROM pc.piece_ends - pc.piece_starts),
           extract(epoch FROM pc.piece_ends - pc.piece_starts)::double precision / 3600 * pc.price_per_hour
    FROM pieces pc
    JOIN allocations a ON a.id = pc.allocation_id
    CROSS JOIN LATERAL (
        SELECT gpu_series, gpu_count FROM instances
        WHERE allocation_id = pc.allocation_id AND id = pc.instance_id LIMIT 1
    ) i
    WHERE pc.piece_ends > pc.piece_starts
$$;
