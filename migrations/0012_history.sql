-- gpubroker schema, version 12: history with an end. `gpubroker verify` proves the
-- ledger up to a checkpoint once and afterwards reads only what is newer; retention
-- removes finished allocations older than a setting, with their instances and ledger
-- rows, and the checkpoint keeps what they added up to (the trigger that allows it is in
-- definitions/history.sql). (New allocations also get time-ordered ids, made by the
-- broker: see UUID.timeOrdered.)

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
-- that remain. Kept by the ledger_retire trigger, so no writer can remove rows and lose them.
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
