-- gpubroker schema, version 4: the invariants the broker keeps in Swift, kept by the
-- database as well, so that no writer (a new code path, a script, an operator's psql)
-- can store a state the broker would misread. Each is named: the store maps a
-- violation to a domain error by its SQLSTATE and constraint name. The invariants kept
-- by triggers (one primary region, the append-only ledger) are in
-- definitions/invariants.sql.

-- A pool serves known QoS levels, each once, at least one (the admin API's rule).
-- Unknown values used to be dropped on read, so a pool could serve less than it said.
-- Only two values are known, so the values are distinct when their count equals the
-- number of known values present.
ALTER TABLE pools
    ADD CONSTRAINT pools_qos_known CHECK (
        coalesce(array_ndims(qos), 0) = 1
        AND qos <@ ARRAY['default', 'best-effort']
        AND cardinality(qos) = ('default' = ANY (qos))::integer + ('best-effort' = ANY (qos))::integer),
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
