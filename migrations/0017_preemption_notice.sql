-- gpubroker schema, version 17: capacity taken back with notice. A preempted instance
-- first turns `preempting` with a deadline and keeps running (and holding its pool's
-- capacity, its lease, usage and budget) until then or until its tenant releases it;
-- only then is it `preempted` and its capacity passed on. (The worker that ends the
-- notice and the functions are in definitions/preemption.sql.)

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
    ADD CONSTRAINT instances_state_check CHECK (state IN ('running', 'idle', 'released', 'preempted', 'preempting')),
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
        kind IN ('reserved', 'renewed', 'released', 'expired', 'preempted', 'idled', 'deprovisioned', 'preempting')),
    ADD COLUMN deadline timestamptz;
