# Sourced by scripts/bench for BENCH_ONLY=scale: how grants and lease expiry cost as the
# work grows, each figure also as a ratio against the smallest point of the same run.
#
# - grants (1 T4 replica, 10 pools, 16 connections) of a tenant without a quota and of one
#   with a quota (never reached), and GET /v1/allocations?status=active&limit=50 of the
#   latter, at no history of their own and after BENCH_SCALE_HISTORY (1000000) released
#   allocations each, and `gpubroker verify` then: the first run, the next (from the
#   checkpoint the first recorded) and --full;
# - BENCH_EXPIRIES (10000) leases made due at once while grants run: seconds until the
#   broker's workers have expired them all (given up after BENCH_EXPIRY_LIMIT, 120 s), the
#   grants' p99 against the same load without expiries, and deadlocks logged meanwhile.
scale_history=${BENCH_SCALE_HISTORY:-1000000}
expiries=${BENCH_EXPIRIES:-10000}
expiry_limit=${BENCH_EXPIRY_LIMIT:-120}
tenant_token() { python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'; }
tenant_id() { "$psql" -Atc "SELECT id FROM tenants WHERE name = '$1'"; }

free_token=$(api POST /v1/admin/tenants '{"name":"scale-free"}' | tenant_token)
quota_token=$(api POST /v1/admin/tenants '{"name":"scale-quota","quota":{"instances":100000000}}' | tenant_token)
for point in 0 "$scale_history"; do
    if [ "$point" != 0 ]; then
        log "scale: seeding $point allocations of history for each tenant"
        seed_history "$(tenant_id scale-free)" "$point"
        seed_history "$(tenant_id scale-quota)" "$point"
        sql -c 'VACUUM ANALYZE'
    fi
    wrk_run "scale.free.h$point" 16 201 "$here/allocate.lua" "$base" BENCH_TYPES="$alltypes" BENCH_TOKEN="$free_token"
    wrk_run "scale.quota.h$point" 16 201 "$here/allocate.lua" "$base" BENCH_TYPES="$alltypes" BENCH_TOKEN="$quota_token"
    wrk_run "scale.list.h$point" 16 200 "$here/get.lua" "$base/v1/allocations?status=active&limit=50" BENCH_TOKEN="$quota_token"
done
put scale.history "$scale_history"
# gpubroker verify after the history: the first run adds up the seeded ledger rows and
# records a checkpoint, the next reads only what came since; --full reads everything.
verify_ms() {
    local started=$(date +%s%N)
    "$bin/gpubroker" verify "$@" --database-url "$dburl" >>"$work/verify-scale.log" 2>&1 || true
    echo $(( ($(date +%s%N) - started) / 1000000 ))
}
put scale.verify_first_ms "$(verify_ms)"
put scale.verify_next_ms "$(verify_ms)"
put scale.verify_full_ms "$(verify_ms --full)"

# Leases: granted in one statement (gpb_grant_batch, as the broker batches them) over the
# general-purpose pools, then made due together.
api POST /v1/admin/tenants '{"name":"scale-expiry"}' >/dev/null
expiring=$(tenant_id scale-expiry)
sql <<SQL >/dev/null
SELECT count(*) FROM gpb_grant_batch((
    SELECT jsonb_agg(jsonb_build_object(
        'allocation', jsonb_build_object(
            'id', gen_random_uuid(), 'tenantId', '$expiring', 'status', 'active',
            'request', '{"shape":{"computeClass":"general-purpose","qos":"default","gpuSeries":[],"gpuCount":0,"cpu":1,"memoryGiB":2},"replicas":1}'::jsonb,
            'replicas', 1, 'placedReplicas', 1, 'labels', '{}'::jsonb, 'decisions', '[]'::jsonb, 'leaseSeconds', 86400),
        'placements', jsonb_build_array(jsonb_build_object(
            'region', r.id, 'pool', 'g8i', 'count', 1, 'unit', NULL, 'vSwitches', jsonb_build_array(r.vswitch_ids[1]))),
        'actor', 'bench', 'policies', md5(gpb_tenant_policies('$expiring')::text)))
    FROM generate_series(1, $expiries) g
    JOIN (SELECT id, vswitch_ids, row_number() OVER (ORDER BY id) - 1 AS n FROM regions) r ON r.n = g % $npools));
SQL
granted=$("$psql" -Atc "SELECT count(*) FROM allocations WHERE tenant_id = '$expiring' AND status = 'active'")
wrk_run scale.expiry_baseline 16 201 "$here/allocate.lua" "$base" BENCH_TYPES="$alltypes" BENCH_TOKEN="$free_token"
deadlocks0=$(grep -c 'deadlock detected' "$work/server.log" || true)
# The grants' measured window starts after the warm-up: the leases fall due inside it.
( wrk_run scale.expiry_load 16 201 "$here/allocate.lua" "$base" BENCH_TYPES="$alltypes" BENCH_TOKEN="$free_token" ) &
load=$!
sleep "$((warmup + 1))"
sql -c "UPDATE allocations SET lease_expires_at = now() WHERE tenant_id = '$expiring' AND status = 'active'"
due=$(date +%s%N)
left=$granted
while [ "$left" -gt 0 ] && [ $(( $(date +%s%N) - due )) -lt $(( expiry_limit * 1000000000 )) ]; do
    sleep 0.2
    left=$("$psql" -Atc "SELECT count(*) FROM allocations WHERE tenant_id = '$expiring' AND status IN ('active', 'partial')")
done
put scale.expiry_ms "$(( ($(date +%s%N) - due) / 1000000 ))"
wait "$load"
put scale.expiries "$granted"
put scale.expiry_left "$left"
put scale.expiry_deadlocks "$(( $(grep -c 'deadlock detected' "$work/server.log" || true) - deadlocks0 ))"
set +e
"$bin/gpubroker" verify --database-url "$dburl" >"$work/verify-scale.log" 2>&1
put scale.verify_exit $?
set -e
python3 "$here/scale.py" "$results" >&2
