-- gpubroker schema, version 11: inventory changes in the admin's event feed, and
-- webhook deliveries claimed through an index instead of a scan of everything pending.
-- (The triggers and functions are in definitions/inventory.sql and webhooks.sql.)

-- Region and pool changes as feed events, written by triggers in the changing
-- transaction (an outbox, like the ledger): the admin's feed reads them beside the
-- ledger in the same (xid, seq) order. `seq` comes from the ledger's own sequence, so a
-- position <xid>-<seq> names one event of either table.
CREATE TABLE inventory_events (
    seq       bigint PRIMARY KEY DEFAULT nextval('ledger_seq_seq'),
    xid       bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    type      text NOT NULL CHECK (type IN ('region.created', 'region.changed', 'region.deleted',
                                            'pool.created', 'pool.changed', 'pool.deleted')),
    region_id text NOT NULL,
    pool_id   text,
    -- The row after the change (`current`, absent once deleted) and before it (`previous`).
    data      jsonb NOT NULL
);
CREATE INDEX inventory_events_by_xid ON inventory_events (xid, seq);

-- An endpoint without a tenant is the admin's: it may take every tenant's allocation
-- events and the inventory's.
ALTER TABLE webhook_endpoints ALTER COLUMN tenant_id DROP NOT NULL;

-- Webhook lanes: one row per endpoint and allocation with deliveries pending, due
-- when its oldest pending delivery may be attempted. Claiming takes due lanes from an
-- index and each lane's oldest delivery, so it costs the same with 40,000 deliveries
-- pending as with none, and an allocation's deliveries still go one at a time, in
-- order. `pending` counts the lane's pending deliveries; the lane goes at 0. Dispatch
-- (adding) and attempts (removing) change it under the lane's row lock, so a lane
-- cannot vanish while a delivery of it is still pending.
CREATE TABLE webhook_lanes (
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    -- The nil uuid: the lane of events without an allocation (an admin's inventory events).
    allocation_id   uuid NOT NULL,
    pending         integer NOT NULL CHECK (pending >= 0),
    -- Also a claim: a broker sending the lane's delivery moves it a minute ahead first.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (endpoint_id, allocation_id)
);
CREATE INDEX webhook_lanes_due ON webhook_lanes (next_attempt_at);

-- The nil uuid is gpb_no_allocation().
INSERT INTO webhook_lanes (endpoint_id, allocation_id, pending, next_attempt_at)
SELECT endpoint_id, coalesce(allocation_id, '00000000-0000-0000-0000-000000000000'), count(*), min(next_attempt_at) FROM webhook_deliveries
WHERE status = 'pending' GROUP BY 1, 2;

-- Claims go through the lanes now.
DROP INDEX webhook_deliveries_due;
