-- gpubroker schema, version 9: a grant batch's cost in PostgreSQL back near what it was
-- before versions 4-8 (docs/PERFORMANCE-ANALYSIS.md, 2026-11-26). Of it, only the
-- QoS constraint is a table's: version 4 wrote it as a call of gpb_valid_qos, a SQL
-- function PostgreSQL could not inline, planned again in every statement that updates a
-- pool. (Version 4 now writes it inline, as here; on a database migrated before, the
-- old constraint went with gpb_valid_qos when the definitions were dropped.)

ALTER TABLE pools
    DROP CONSTRAINT IF EXISTS pools_qos_known,
    ADD CONSTRAINT pools_qos_known CHECK (
        coalesce(array_ndims(qos), 0) = 1
        AND qos <@ ARRAY['default', 'best-effort']
        AND cardinality(qos) = ('default' = ANY (qos))::integer + ('best-effort' = ANY (qos))::integer);
