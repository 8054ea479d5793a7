-- gpubroker schema, version 13: the inventory read by changes. A broker keeps regions and
-- pools in memory and reads only the rows written since its last read, instead of all of
-- them (20,000 pools took 130 ms to read, longer than a snapshot lived).

-- The writing transaction's id (xid8 as bigint), as the ledger's `xid` (version 6). A
-- reader that saw the rows as of a snapshot with xmin X has seen every change of a
-- transaction below X; every change it did not see was written by a transaction at or
-- above X. So "changed_xid >= X" is all it must read next time: rows it already had may
-- come again, and no change is ever missed, whatever order transactions commit in.
-- Set by trigger, so no writer (a grant function of any version included) can forget it.
-- Not indexed: pool counter updates stay HOT, and a scan of 20,000 rows is a millisecond.
ALTER TABLE regions ADD COLUMN changed_xid bigint NOT NULL DEFAULT 0;
ALTER TABLE pools ADD COLUMN changed_xid bigint NOT NULL DEFAULT 0;

CREATE FUNCTION gpb_mark_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.changed_xid := pg_current_xact_id()::text::bigint;
    RETURN NEW;
END
$$;

CREATE TRIGGER regions_mark_changed BEFORE INSERT OR UPDATE ON regions
    FOR EACH ROW EXECUTE FUNCTION gpb_mark_changed();
CREATE TRIGGER pools_mark_changed BEFORE INSERT OR UPDATE ON pools
    FOR EACH ROW EXECUTE FUNCTION gpb_mark_changed();

-- A removed row leaves nothing to read: removals are counted instead, in the same
-- transaction, and a reader that sees the count move reads everything afresh. Removals
-- are rare admin actions, so they may serialise on this one row.
CREATE TABLE inventory_removals (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    removals bigint NOT NULL DEFAULT 0
);
INSERT INTO inventory_removals DEFAULT VALUES;

CREATE FUNCTION gpb_count_removal() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE inventory_removals SET removals = removals + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER regions_count_removal AFTER DELETE ON regions
    FOR EACH STATEMENT EXECUTE FUNCTION gpb_count_removal();
CREATE TRIGGER pools_count_removal AFTER DELETE ON pools
    FOR EACH STATEMENT EXECUTE FUNCTION gpb_count_removal();

-- The batch grant's statements join its JSON placements to pools. PostgreSQL guesses 100
-- rows per jsonb_array_elements, so 10,000 placements per batch, and at 20,000 pools it
-- hash-joins them with a scan of every pool, twice per batch (grants/s fell to 0.3× of
-- 40 pools; 16 grants a batch touch 16 pools). Index lookups are right at every size: the
-- function (whichever migration defined it last) plans without sequential scans where an
-- index serves. Measured at 40 pools: the same grants/s either way.
DO $$
BEGIN
    IF to_regprocedure('gpb_grant_fresh(jsonb)') IS NOT NULL THEN
        ALTER FUNCTION gpb_grant_fresh(jsonb) SET enable_seqscan = off;
    END IF;
END
$$;
