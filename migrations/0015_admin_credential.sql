-- The admin credential of a database, when no broker is configured with one: generated
-- by the first broker that starts on it and stored only as a SHA-256 hash, so that
-- every broker sharing the database accepts the same admin token. One row at most.
CREATE TABLE admin_credential (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    token_sha256 bytea NOT NULL CHECK (length(token_sha256) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
