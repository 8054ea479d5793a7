-- gpubroker schema, version 10: monthly budgets. A tenant's quota may hold
-- `spendPerMonth` and `gpuHoursPerMonth`; counters per tenant and month keep what counts
-- against them, only for tenants with a budget, so a check reads one row. The triggers
-- that keep them and the checks are in definitions/budgets.sql and grants.sql.

-- Lets every budget trigger return at once while no tenant has a budget (the test of
-- gpb_has_budget).
CREATE INDEX tenants_with_budget ON tenants (id)
    WHERE (quota->>'spendPerMonth') IS NOT NULL OR (quota->>'gpuHoursPerMonth') IS NOT NULL;

-- Spend in price-seconds (price per hour × seconds; / 3600 is money) and GPU-seconds,
-- numeric, so every sum is exact and a check made before a grant agrees to the last
-- digit with the counters the grant then raises. `committed_*`: what grants, scale-outs,
-- admissions and renewals added (checked against the budget when it rises);
-- `adjusted_*`: corrections never refused: a lease ended early (negative) or expired
-- late, a price change, what was spent before the budget was set.
CREATE TABLE tenant_spend (
    tenant_id             uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    month                 date NOT NULL CHECK (extract(day FROM month) = 1),
    committed_spend       numeric NOT NULL DEFAULT 0,
    committed_gpu_seconds numeric NOT NULL DEFAULT 0,
    adjusted_spend        numeric NOT NULL DEFAULT 0,
    adjusted_gpu_seconds  numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, month)
);
