-- gpubroker schema, version 12: history with an end. `gpubroker verify` proves the
-- ledger up to a checkpoint once and afterwards reads only what is newer; retention
-- removes finished allocations older than a setting, with their instances and ledger
-- rows, and the checkpoint keeps what they added up to. (New allocations also get
-- time-ordered ids, made by the broker: see UUID.timeOrdered.)

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

-- What `gpubroker verify` proved: every ledger row up to `through_seq` is committed and,
-- per pool, their deltas add up to `delta_sum` (ledger_checkpoint_pools). Verify takes
-- the position while no ledger write is in flight, so no row at or below it can commit
-- later; the next verify adds up only the rows after it. One row.
CREATE TABLE ledger_checkpoint (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    through_seq bigint NOT NULL CHECK (through_seq >= 0),
    taken_at    timestamptz NOT NULL DEFAULT now()
);
-- (No foreign key to pools: the sums outlive a removed pool, as its ledger rows do.)
CREATE TABLE ledger_checkpoint_pools (
    region_id text NOT NULL,
    pool_id   text NOT NULL,
    delta_sum bigint NOT NULL,
    PRIMARY KEY (region_id, pool_id)
);

-- What retention removed from the ledger, per pool: a full verify adds these to the rows
-- that remain. Kept by the trigger below, so no writer can remove rows and lose them.
CREATE TABLE ledger_retired (
    region_id text NOT NULL,
    pool_id   text NOT NULL,
    delta_sum bigint NOT NULL,
    row_count bigint NOT NULL,
    PRIMARY KEY (region_id, pool_id)
);

-- Retention's scan: ended allocations by the time of their last change (their end), so
-- a pass reads what is due and not the history younger than its cutoff. Releases and
-- expiries already write every index of the row (its status is indexed); grants write
-- nothing here.
CREATE INDEX allocations_ended ON allocations (updated_at) WHERE status IN ('released', 'expired', 'unschedulable');

-- The ledger stays append-only (migration 4) except that rows a checkpoint covers, of
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

DROP TRIGGER ledger_append_only ON ledger;
CREATE TRIGGER ledger_append_only
    BEFORE UPDATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION gpb_ledger_append_only();
CREATE TRIGGER ledger_retire
    AFTER DELETE ON ledger
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION gpb_ledger_retire();
