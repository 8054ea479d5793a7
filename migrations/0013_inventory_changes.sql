-- gpubroker schema, version 13: the inventory read by changes. A broker keeps regions and
-- pools in memory and reads only the rows written since its last read, instead of all of
-- them (20,000 pools took 130 ms to read, longer than a snapshot lived). The triggers
-- that keep these columns are in definitions/inventory.sql.

-- The writing transaction's id (xid8 as bigint), as the ledger's `xid` (version 6), set
-- by trigger. Not indexed: pool counter updates stay HOT, and a scan of 20,000 rows is a
-- millisecond.
ALTER TABLE regions ADD COLUMN changed_xid bigint NOT NULL DEFAULT 0;
ALTER TABLE pools ADD COLUMN changed_xid bigint NOT NULL DEFAULT 0;

-- A removed row leaves nothing to read: removals are counted instead, in the same
-- transaction, and a reader that sees the count move reads everything afresh. Removals
-- are rare admin actions, so they may serialise on this one row.
CREATE TABLE inventory_removals (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    removals bigint NOT NULL DEFAULT 0
);
INSERT INTO inventory_removals DEFAULT VALUES;
