-- gpubroker schema, version 17: capacity that can go away. A preempted instance first
-- turns `preempting` with a deadline and keeps running (and holding its pool's capacity,
-- its lease, usage and budget) until then or until its tenant releases it; only then is
-- it `preempted` and its capacity passed on. And reports from the real world: instances
-- `interrupted` (a spot reclaim) or that `failedToStart`, and pools out of stock for a
-- cool-down. (The functions are in definitions/preemption.sql and reports.sql.)

-- Per QoS, set by the admin: how long a victim is warned before it stops (0: at once,
-- the behaviour before version 17) and how long an instance runs before it may be
-- chosen at all. A QoS without a row has both at 0.
CREATE TABLE preemption_settings (
    qos                 text PRIMARY KEY CHECK (qos IN ('default', 'best-effort')),
    notice_seconds      integer NOT NULL DEFAULT 0 CHECK (notice_seconds BETWEEN 0 AND 86400),
    min_runtime_seconds integer NOT NULL DEFAULT 0 CHECK (min_runtime_seconds BETWEEN 0 AND 604800),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- The new state, with its deadline and the allocation that waits for its capacity
-- (kept after it stops: the history says who took it).
ALTER TABLE instances
    DROP CONSTRAINT instances_state_check,
    ADD CONSTRAINT instances_state_check CHECK (
        state IN ('running', 'idle', 'released', 'preempted', 'preempting', 'interrupted', 'failedToStart')),
    ADD COLUMN preempt_deadline timestamptz,
    ADD COLUMN preempted_for uuid,
    ADD CONSTRAINT instances_preempting_has_deadline CHECK (state <> 'preempting' OR preempt_deadline IS NOT NULL);

-- A preempting instance is still the physical instance it was: one allocation at a time.
DROP INDEX instances_live_id;
CREATE UNIQUE INDEX instances_live_id ON instances (id) WHERE state IN ('running', 'idle', 'preempting');
-- The notice worker's scan: what is due, oldest deadline first.
CREATE INDEX instances_preempting ON instances (preempt_deadline) WHERE state = 'preempting';

-- `preempting` rows (delta 0) carry the deadline, so the event body says it without a
-- lookup (gpb_event_json).
ALTER TABLE ledger
    DROP CONSTRAINT ledger_kind_check,
    ADD CONSTRAINT ledger_kind_check CHECK (
        kind IN ('reserved', 'renewed', 'released', 'expired', 'preempted', 'idled', 'deprovisioned', 'preempting',
                 'interrupted', 'failedToStart')),
    ADD COLUMN deadline timestamptz;

-- Reports of a region's agent (or an admin), by the report's own id: the same id with
-- the same body answers the first answer, so an agent retries safely.
CREATE TABLE capacity_reports (
    id           text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128),
    kind         text NOT NULL CHECK (kind IN ('interrupted', 'failedToStart', 'outOfStock')),
    request_hash bytea NOT NULL,
    answer       jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- A pool out of stock: its capacity is lowered to `available` until `until`, then back
-- to `restore_capacity` (what the pool was reported with; an inventory report during
-- the cool-down changes that instead of the capacity).
CREATE TABLE pool_stockouts (
    region_id        text NOT NULL,
    pool_id          text NOT NULL,
    restore_capacity integer NOT NULL CHECK (restore_capacity >= 0),
    available        integer NOT NULL CHECK (available >= 0),
    until            timestamptz NOT NULL,
    reason           text NOT NULL,
    report_id        text NOT NULL,
    PRIMARY KEY (region_id, pool_id),
    FOREIGN KEY (region_id, pool_id) REFERENCES pools (region_id, id) ON DELETE CASCADE
);
CREATE INDEX pool_stockouts_due ON pool_stockouts (until);
