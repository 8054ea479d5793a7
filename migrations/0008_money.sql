-- gpubroker schema, version 8: money. Every price a pool has had (kept by triggers,
-- definitions/money.sql), what the usage report and the spend metrics price the ledger at.

-- A pool's prices over time: a row from the moment a price took effect until the next
-- row of the same pool. Kept by triggers on pools, so no writer can forget it; rows
-- outlive their pool, as the instances they price do. (No foreign key: history.)
CREATE TABLE pool_prices (
    region_id      text NOT NULL,
    pool_id        text NOT NULL,
    effective_from timestamptz NOT NULL,
    price_per_hour double precision NOT NULL CHECK (price_per_hour >= 0),
    PRIMARY KEY (region_id, pool_id, effective_from)
);
-- What the pools cost before prices were kept: today's price, since always.
INSERT INTO pool_prices (region_id, pool_id, effective_from, price_per_hour)
SELECT region_id, id, '-infinity', price_per_hour FROM pools;

-- The ledger is append-only and `at` grows with it: a BRIN index costs writes nearly
-- nothing and lets a report skip the history before its window.
CREATE INDEX ledger_at ON ledger USING brin (at);
