-- Fair sharing when capacity is scarce (issue 28). A tenant may belong to a cohort and
-- hold, per resource, a guarantee, a weight for what is above guarantees and borrowing /
-- lending limits. Resources: `gpus` (GPUs of any model), `gpu:<model>` (GPUs of one
-- accelerator model, the pools' gpu_series), `cpu` (vCPUs of CPU classes) and
-- `memoryGiB` (their memory). A resource without a row: no guarantee, weight 1, no limits.
ALTER TABLE tenants ADD COLUMN cohort text CHECK (cohort ~ '^[a-z0-9][a-z0-9-]{0,62}$');

CREATE TABLE tenant_shares (
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    resource        text NOT NULL CHECK (resource ~ '^(gpus|cpu|memoryGiB|gpu:[A-Za-z0-9._-]{1,64})$'),
    guaranteed      double precision NOT NULL DEFAULT 0 CHECK (guaranteed >= 0 AND guaranteed <= 1e9),
    weight          double precision NOT NULL DEFAULT 1 CHECK (weight > 0 AND weight <= 1000),
    -- NULL: no limit.
    borrowing_limit double precision CHECK (borrowing_limit >= 0 AND borrowing_limit <= 1e9),
    lending_limit   double precision CHECK (lending_limit >= 0 AND lending_limit <= 1e9),
    PRIMARY KEY (tenant_id, resource)
);
