-- History with an end: `gpubroker verify` proves the ledger up to a checkpoint once, and
-- retention removes finished allocations older than a setting, with their instances and
-- ledger rows; the checkpoint keeps what they added up to.

-- A version 7 UUID (RFC 9562) for p_at: 48 bits of Unix milliseconds, then random bits,
-- as the broker makes them. For writers in SQL (seeds, scripts): history they write
-- then lands on the indexes as the broker's does.
CREATE FUNCTION gpb_uuidv7(p_at timestamptz DEFAULT clock_timestamp())
RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
                                          PLACING substring(int8send(floor(extract(epoch FROM p_at) * 1000)::bigint) FROM 3)
                                          FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
$$;

-- The ledger stays append-only (invariants.sql) except that rows a checkpoint covers, of
-- allocations that ended, may be deleted: their deltas move to ledger_retired in the same
-- statement. Anything else is refused (SQLSTATE GB002), as every UPDATE and TRUNCATE
-- still is: a live allocation's rows are what the usage report charges it from.
CREATE FUNCTION gpb_ledger_retire()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM old_rows
               WHERE seq > coalesce((SELECT through_seq FROM ledger_checkpoint), 0))
       OR EXISTS (SELECT 1 FROM allocations a
                  WHERE a.id IN (SELECT allocation_id FROM old_rows) AND a.status IN ('pending', 'active', 'partial')) THEN
        RAISE EXCEPTION 'the ledger is append-only: only rows a verify checkpoint covers, of allocations that ended, may be removed'
            USING ERRCODE = 'GB002', CONSTRAINT = 'ledger_append_only';
    END IF;
    INSERT INTO ledger_retired AS r (region_id, pool_id, delta_sum, row_count)
    SELECT region_id, pool_id, sum(delta), count(*) FROM old_rows WHERE pool_id IS NOT NULL GROUP BY 1, 2
    ON CONFLICT (region_id, pool_id)
    DO UPDATE SET delta_sum = r.delta_sum + excluded.delta_sum, row_count = r.row_count + excluded.row_count;
    RETURN NULL;
END
$$;

CREATE TRIGGER ledger_retire
    AFTER DELETE ON ledger
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION gpb_ledger_retire();
