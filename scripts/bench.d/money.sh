# Sourced by scripts/bench for BENCH_ONLY=money: the grant rate (1 T4 replica, 10 pools,
# 16 connections, a day's lease) of a tenant without a budget and of one with monthly
# budgets (spend and GPU-hours, never reached), in one run and alternated: first while no
# tenant has a budget (the budget triggers return at once), then the budgeted tenant, then
# both again now that a budget exists. Each rate is also printed as a ratio against the
# first.
tenant_token() { python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'; }
free_token=$(api POST /v1/admin/tenants '{"name":"money-free"}' | tenant_token)
wrk_run money.free 16 201 "$here/allocate.lua" "$base" BENCH_TYPES="$alltypes" BENCH_TOKEN="$free_token"
budget_token=$(api POST /v1/admin/tenants \
    '{"name":"money-budget","quota":{"spendPerMonth":1000000000000,"gpuHoursPerMonth":1000000000000}}' | tenant_token)
for round in 1 2; do
    wrk_run "money.budget$round" 16 201 "$here/allocate.lua" "$base" BENCH_TYPES="$alltypes" BENCH_TOKEN="$budget_token"
    wrk_run "money.free_beside$round" 16 201 "$here/allocate.lua" "$base" BENCH_TYPES="$alltypes" BENCH_TOKEN="$free_token"
done
rate() { awk -F= -v k="money.$1.requests" '$1 == k {print $2}' "$results"; }
unexpected() { awk -F= -v k="money.$1.unexpected" '$1 == k {print $2}' "$results"; }
first=$(rate free)
for run in free budget1 free_beside1 budget2 free_beside2; do
    log "money: $run $(( $(rate $run) / seconds )) grants/s (× $(python3 -c "print(f'{$(rate $run) / max($first, 1):.2f}')") of free), unexpected $(unexpected $run)"
done
log "money: with budgets / without (same rounds): $(python3 -c "
b = $(rate budget1) + $(rate budget2); f = $(rate free_beside1) + $(rate free_beside2)
print(f'{b / max(f, 1):.2f}')")"
set +e
"$bin/gpubroker" verify --database-url "$dburl" >"$work/verify-money.log" 2>&1
log "money: verify exit $?"
set -e
