-- gpubroker schema, version 4: the invariants the broker keeps in Swift, kept by the
-- database as well, so that no writer (a new code path, a script, an operator's psql)
-- can store a state the broker would misread. Each is named: the store maps a
-- violation to a domain error by its SQLSTATE and constraint name.

-- A pool serves known QoS levels, each once, at least one (the admin API's rule).
-- Unknown values used to be dropped on read, so a pool could serve less than it said.
CREATE FUNCTION gpb_valid_qos(p_qos text[])
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_ndims(p_qos), 0) = 1
       AND p_qos <@ ARRAY['default', 'best-effort']
       AND cardinality(p_qos) = (SELECT count(DISTINCT q) FROM unnest(p_qos) AS q)
$$;

ALTER TABLE pools
    ADD CONSTRAINT pools_qos_known CHECK (gpb_valid_qos(qos)),
    -- GPU fields describe the gpu class and nothing else: a CPU pool with a GPU series
    -- would be offered to GPU requests by the series filter.
    ADD CONSTRAINT pools_gpu_fields_only_for_gpu CHECK (
        CASE WHEN compute_class = 'gpu'
             THEN gpu_series IS NOT NULL AND gpu_memory_gib IS NOT NULL AND gpu_memory_gib > 0
                  AND gpus_per_instance IS NOT NULL AND gpus_per_instance > 0
             ELSE gpu_series IS NULL AND gpu_memory_gib IS NULL AND gpus_per_instance IS NULL
        END);

-- Which of the lease and queue columns each status carries:
--   pending, unschedulable: a queue deadline, no lease, nothing placed;
--   active, partial:        a lease, no queue deadline;
--   expired:                the lease that ran out, no queue deadline, nothing placed;
--   released:               no lease, nothing placed (a released pending allocation
--                           keeps the deadline it had).
ALTER TABLE allocations
    ADD CONSTRAINT allocations_placed_within_replicas CHECK (placed_replicas <= replicas),
    ADD CONSTRAINT allocations_columns_by_status CHECK (
        CASE status
            WHEN 'pending' THEN lease_expires_at IS NULL AND queue_deadline IS NOT NULL AND placed_replicas = 0
            WHEN 'unschedulable' THEN lease_expires_at IS NULL AND queue_deadline IS NOT NULL AND placed_replicas = 0
            WHEN 'active' THEN lease_expires_at IS NOT NULL AND queue_deadline IS NULL
            WHEN 'partial' THEN lease_expires_at IS NOT NULL AND queue_deadline IS NULL
            WHEN 'expired' THEN lease_expires_at IS NOT NULL AND queue_deadline IS NULL AND placed_replicas = 0
            WHEN 'released' THEN lease_expires_at IS NULL AND placed_replicas = 0
            ELSE false
        END);

-- Exactly one primary region once any region exists. "At most one" is the unique
-- index regions_single_primary; "at least one" is checked at commit, because moving
-- the primary demotes one region and promotes another in two statements. (The store
-- serialises region writes on an advisory lock; this catches every other writer.)
CREATE FUNCTION gpb_check_primary_region()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM regions) AND NOT EXISTS (SELECT 1 FROM regions WHERE is_primary) THEN
        RAISE EXCEPTION 'regions exist but none is the primary region'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'regions_one_primary';
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER regions_one_primary
    AFTER INSERT OR DELETE OR UPDATE OF is_primary ON regions
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION gpb_check_primary_region();

-- The ledger is append-only: rows are never changed or removed. SQLSTATE GB002.
CREATE FUNCTION gpb_ledger_append_only()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % refused', TG_OP
        USING ERRCODE = 'GB002', CONSTRAINT = 'ledger_append_only';
END
$$;

CREATE TRIGGER ledger_append_only
    BEFORE UPDATE OR DELETE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION gpb_ledger_append_only();

CREATE TRIGGER ledger_no_truncate
    BEFORE TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION gpb_ledger_append_only();
