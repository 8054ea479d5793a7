-- gpubroker schema, version 1: regions and pools (inventory), tenants, allocations,
-- instances and the append-only ledger. Shipped migrations are never edited.

CREATE TABLE regions (
    id                text PRIMARY KEY,
    display_name      text,
    kind              text NOT NULL CHECK (kind IN ('serverless', 'on-premises')),
    is_primary        boolean NOT NULL DEFAULT false,
    vpc_id            text NOT NULL,
    vswitch_ids       text[] NOT NULL CHECK (cardinality(vswitch_ids) > 0),
    security_group_id text NOT NULL,
    labels            jsonb NOT NULL DEFAULT '{}',
    state             text NOT NULL CHECK (state IN ('active', 'cordoned')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- At most one primary region, whatever the races between admins.
CREATE UNIQUE INDEX regions_single_primary ON regions ((true)) WHERE is_primary;

-- `allocated` counts instances holding capacity (running and idle); `idle` the warm ones.
-- Capacity may be reported below `allocated` (stock shrank): grants then check
-- `allocated + n <= capacity`, so nothing new is granted and nothing held is taken away.
CREATE TABLE pools (
    region_id              text NOT NULL REFERENCES regions (id),
    id                     text NOT NULL,
    compute_class          text NOT NULL CHECK (compute_class IN ('general-purpose', 'performance', 'gpu')),
    qos                    text[] NOT NULL,
    gpu_series             text,
    gpu_memory_gib         double precision,
    gpus_per_instance      integer,
    cpu                    double precision NOT NULL CHECK (cpu > 0),
    memory_gib             double precision NOT NULL CHECK (memory_gib > 0),
    instance_type          text NOT NULL,
    capacity               integer NOT NULL CHECK (capacity >= 0),
    allocated              integer NOT NULL DEFAULT 0 CHECK (allocated >= 0),
    idle                   integer NOT NULL DEFAULT 0 CHECK (idle >= 0 AND idle <= allocated),
    price_per_hour         double precision NOT NULL CHECK (price_per_hour >= 0),
    defer_scale_in_seconds integer NOT NULL DEFAULT 600 CHECK (defer_scale_in_seconds >= 0),
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region_id, id)
);

CREATE TABLE tenants (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    -- sha256 of the bearer token: the token itself is never stored.
    token_hash bytea NOT NULL UNIQUE,
    quota      jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE allocations (
    id               uuid PRIMARY KEY,
    -- Creation order: the stable key of cursor pagination and of the pending queue.
    seq              bigserial UNIQUE,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    status           text NOT NULL CHECK (status IN ('pending', 'active', 'partial', 'released', 'expired', 'unschedulable')),
    request          jsonb NOT NULL,
    replicas         integer NOT NULL CHECK (replicas > 0),
    placed_replicas  integer NOT NULL DEFAULT 0 CHECK (placed_replicas >= 0),
    labels           jsonb NOT NULL DEFAULT '{}',
    decisions        jsonb NOT NULL DEFAULT '[]',
    lease_seconds    integer NOT NULL,
    lease_expires_at timestamptz,
    queue_deadline   timestamptz,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX allocations_by_tenant ON allocations (tenant_id, seq);
CREATE INDEX allocations_live_leases ON allocations (lease_expires_at) WHERE status IN ('active', 'partial');
CREATE INDEX allocations_pending ON allocations (seq) WHERE status = 'pending';

-- One row per replica an allocation was given. A warm (idle) instance reused by a later
-- grant gets a new row with the same instance id; the old row then reads `released`.
CREATE TABLE instances (
    seq           bigserial PRIMARY KEY,
    id            uuid NOT NULL,
    allocation_id uuid NOT NULL REFERENCES allocations (id),
    region_id     text NOT NULL,
    pool_id       text NOT NULL,
    -- What the instance is, copied at grant time: history stays readable after its
    -- pool or region changes or goes away.
    instance_type     text NOT NULL,
    gpu_series        text,
    gpu_count         integer NOT NULL,
    cpu               double precision NOT NULL,
    memory_gib        double precision NOT NULL,
    vpc_id            text NOT NULL,
    vswitch_id        text NOT NULL,
    security_group_id text NOT NULL,
    unit              integer,
    state         text NOT NULL CHECK (state IN ('running', 'idle', 'released', 'preempted')),
    reused        boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    idle_since    timestamptz,
    -- No foreign key to pools: history outlives a deleted pool; live rows are guarded
    -- by the pool's `allocated` counter, which blocks deleting a pool in use.
    ended_at      timestamptz
);
-- A physical instance serves one allocation at a time.
CREATE UNIQUE INDEX instances_live_id ON instances (id) WHERE state IN ('running', 'idle');
CREATE INDEX instances_by_allocation ON instances (allocation_id, seq);
CREATE INDEX instances_idle ON instances (region_id, pool_id, idle_since) WHERE state = 'idle';

-- Append-only: every change to capacity use. Per pool, sum(delta) = live instances.
CREATE TABLE ledger (
    seq           bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind          text NOT NULL CHECK (kind IN ('reserved', 'renewed', 'released', 'expired', 'preempted', 'idled', 'deprovisioned')),
    region_id     text,
    pool_id       text,
    allocation_id uuid,
    instance_id   uuid,
    delta         integer NOT NULL,
    actor         text NOT NULL
);
CREATE INDEX ledger_by_allocation ON ledger (allocation_id, seq);
CREATE INDEX ledger_by_pool ON ledger (region_id, pool_id);

CREATE TABLE policies (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    name       text NOT NULL,
    selector   jsonb NOT NULL DEFAULT '{}',
    policy     jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

-- Recorded in the grant's own transaction, so a crash cannot separate key and grant.
CREATE TABLE idempotency_keys (
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    key           text NOT NULL,
    request_hash  bytea NOT NULL,
    -- The first answer, replayed for the same key and body. Written in the grant's own
    -- transaction, so other transactions never see it empty.
    response      text,
    allocation_id uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
