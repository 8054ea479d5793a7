-- gpubroker schema, version 6: events out. A position in the ledger that readers can
-- follow in commit-safe order, and webhook endpoints with their deliveries. (The
-- notifications that wake every broker and the functions that read the feed and turn it
-- into deliveries are in definitions/.)

-- The ledger as a feed. Each row records the writing transaction's id (xid8 as
-- bigint, so that a BRIN index can follow it). Rows of transactions below the
-- oldest transaction still running (`pg_snapshot_xmin`) are final: committed and
-- visible, or gone for good. A reader that takes rows in (xid, seq) order up to that
-- horizon is never passed by a row committing later, so a position (xid, seq) is a
-- cursor without gaps or repeats, also across brokers and restarts. The grant path
-- writes nothing more than the column. Rows written before version 6 have no xid and
-- are not followed.
ALTER TABLE ledger ADD COLUMN xid bigint;
ALTER TABLE ledger ALTER COLUMN xid SET DEFAULT pg_current_xact_id()::text::bigint;
CREATE INDEX ledger_by_xid ON ledger USING brin (xid);

CREATE TABLE webhook_endpoints (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    url         text NOT NULL CHECK (url ~ '^https?://'),
    -- Empty: every type.
    event_types text[] NOT NULL DEFAULT '{}',
    -- "whsec_" + base64 of 32 random bytes; kept in clear because it signs. The
    -- previous one also signs for a day after a rotation, as Standard Webhooks allows.
    secret                   text NOT NULL CHECK (secret LIKE 'whsec\_%'),
    previous_secret          text,
    previous_secret_until    timestamptz,
    -- failing: a delivery ran out of retries; active again after the next success.
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'failing')),
    -- The feed position up to which events became deliveries.
    cursor_xid  bigint NOT NULL,
    cursor_seq  bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (tenant_id, created_at);

CREATE TABLE webhook_deliveries (
    id              bigserial PRIMARY KEY,
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    -- webhook-id: the same on every attempt.
    message_id      text NOT NULL,
    allocation_id   uuid,
    event_type      text NOT NULL,
    -- The body exactly as signed and sent.
    payload         text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- Also a claim: a broker sending it moves it a minute ahead first.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    last_status     integer,
    last_error      text,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, message_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- Per allocation, one delivery at a time and in order.
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (endpoint_id, allocation_id, id) WHERE status = 'pending';
