#!/usr/bin/env bash
# Instructions PostgreSQL spends on one grant batch statement, per schema: a measure that
# other load on the machine does not move (repeatable to 0.1 %), for comparing migrations.
# See docs/PERFORMANCE-ANALYSIS.md, 2026-11-26.
#
# Usage: scripts/bench.d/batch-cost.sh [--tsv] [REV...]  (default: the working tree's migrations)
# For each REV, a database with that commit's migrations/, seeded like scripts/bench (10
# regions × 4 pools, 20,000 released allocations). A single-user backend runs K batch
# statements under callgrind; instructions of K = BASE + N minus K = BASE, over N, are one
# batch (BATCH_COST_BASE, default 20: plans cached by then; BATCH_COST_BATCHES = N, default
# 100). --tsv prints one line per shape, "grant.<shape><TAB>instructions", for
# scripts/instruction-guard. Batches are built in SQL: one T4 replica per grant, over 10 pools or one (hot),
# for a tenant without limits, one with a quota, one with a monthly budget and one with fair
# shares (a cohort and guarantees, where the schema has them); building them is measured
# alone and subtracted. Prints millions of instructions.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
tsv=false
if [ "${1:-}" = --tsv ]; then tsv=true; shift; fi
revs=("$@")
base=${BATCH_COST_BASE:-20}
batches=${BATCH_COST_BATCHES:-100}
[ ${#revs[@]} -gt 0 ] || revs=(worktree)
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
if ! command -v valgrind >/dev/null; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get install -y valgrind >&2
fi
work=$(mktemp -d /tmp/gpubroker-batch-cost.XXXXXX)
chmod 755 "$work"
runas=()
if [ "$(id -u)" -eq 0 ]; then runas=(runuser -u postgres --); chown postgres "$work"; fi
pgctl() { "${runas[@]}" "$bindir/pg_ctl" -D "$work/data" "$@" >/dev/null; }
trap 'pgctl -m fast -w stop 2>/dev/null || true; rm -rf "$work"' EXIT
"${runas[@]}" "$bindir/initdb" -D "$work/data" -U postgres -A trust -E UTF8 >/dev/null
printf "listen_addresses = ''\nunix_socket_directories = '%s'\n" "$work" >>"$work/data/postgresql.conf"
pgctl -l "$work/server.log" -w start
sql() { "$bindir/psql" -h "$work" -U postgres -v ON_ERROR_STOP=1 -q "$@"; }

for i in "${!revs[@]}"; do
    rev=${revs[$i]}
    sql -c "CREATE DATABASE r$i"
    if [ "$rev" = worktree ]; then
        for f in "$root"/migrations/*.sql "$root"/definitions/*.sql; do sql -d "r$i" -f "$f"; done
    else
        # Numbered migrations, then (since the SQL layout of issue 25) the definitions.
        for f in $(git -C "$root" ls-tree --name-only "$rev" migrations/ | sort) \
                 $(git -C "$root" ls-tree --name-only "$rev" definitions/ | sort); do
            git -C "$root" show "$rev:$f" | sql -d "r$i"
        done
    fi
    sql -d "r$i" <<'SQL'
INSERT INTO regions (id, kind, is_primary, vpc_id, vswitch_ids, security_group_id, state)
SELECT format('bench-%s', lpad(i::text, 2, '0')), 'serverless', i = 1, 'vpc-' || i, ARRAY['vsw-' || i], 'sg-' || i, 'active'
FROM generate_series(1, 10) i;
SQL
    # Since migration 14 a GPU pool names its vendor.
    vendor=""
    sql -d "r$i" -tAc "SELECT 1 FROM information_schema.columns WHERE table_name = 'pools' AND column_name = 'gpu_vendor'" \
        | grep -q 1 && vendor=", gpu_vendor"
    sql -d "r$i" <<SQL
INSERT INTO pools (region_id, id, compute_class, qos, gpu_series, gpu_memory_gib, gpus_per_instance, cpu, memory_gib,
                   instance_type, capacity, price_per_hour$vendor)
SELECT r.id, p.id, p.class, '{default}', p.series, p.gib, p.gpus, p.cpu, p.mem, 'ecs.' || p.id, p.cap, p.price
       ${vendor:+, CASE WHEN p.class = 'gpu' THEN 'nvidia' END}
FROM regions r, (VALUES ('t4', 'gpu', 'T4', 16.0, 1, 4.0, 15.0, 100000000, 1.1), ('a10', 'gpu', 'A10', 24.0, 1, 8.0, 30.0, 500, 2.4),
                        ('l20', 'gpu', 'L20', 48.0, 1, 16.0, 120.0, 200, 6.1),
                        ('g8i', 'general-purpose', NULL, NULL, NULL, 4.0, 16.0, 5000, 0.2))
     AS p (id, class, series, gib, gpus, cpu, mem, cap, price);
SQL
    sql -d "r$i" <<'SQL'
INSERT INTO tenants (id, name, token_hash) VALUES ('11111111-1111-1111-1111-111111111111', 'bench', '\x01'),
    ('22222222-2222-2222-2222-222222222222', 'quota', '\x02'), ('33333333-3333-3333-3333-333333333333', 'budget', '\x03'),
    ('44444444-4444-4444-4444-444444444444', 'shares', '\x04');
-- Limits the batches never reach: what is measured is the checking.
UPDATE tenants SET quota = '{"instances": 1000000000, "gpus": 1000000000}' WHERE name = 'quota';
UPDATE tenants SET quota = '{"spendPerMonth": 1000000000000}' WHERE name = 'budget';
-- Fair shares (migration 16) where the schema has them: a cohort, a guarantee per model and overall.
DO $$ BEGIN
    IF to_regclass('tenant_shares') IS NOT NULL THEN
        EXECUTE $q$UPDATE tenants SET cohort = 'bench' WHERE name = 'shares';
                   INSERT INTO tenant_shares (tenant_id, resource, guaranteed, weight, borrowing_limit)
                   VALUES ('44444444-4444-4444-4444-444444444444', 'gpu:T4', 8, 2, 8),
                          ('44444444-4444-4444-4444-444444444444', 'gpus', 4, 1, NULL)$q$;
    END IF;
END $$;
INSERT INTO allocations (id, tenant_id, status, request, replicas, placed_replicas, lease_seconds)
SELECT md5('h' || g)::uuid, '11111111-1111-1111-1111-111111111111', 'released',
       '{"shape":{"computeClass":"gpu","qos":"default","gpuSeries":["T4"],"gpuCount":1,"cpu":4,"memoryGiB":15}}', 1, 0, 300
FROM generate_series(1, 20000) g;
INSERT INTO instances (id, allocation_id, region_id, pool_id, instance_type, gpu_series, gpu_count, cpu, memory_gib,
                       vpc_id, vswitch_id, security_group_id, state, ended_at)
SELECT md5('i' || a.id::text)::uuid, a.id, p.region_id, p.id, p.instance_type, p.gpu_series, coalesce(p.gpus_per_instance, 0),
       p.cpu, p.memory_gib, 'vpc', 'vsw', 'sg', 'released', now()
FROM allocations a JOIN (SELECT row_number() OVER (ORDER BY region_id, id) - 1 AS k, * FROM pools) p ON p.k = a.seq % 40;
INSERT INTO ledger (kind, region_id, pool_id, allocation_id, instance_id, delta, actor)
SELECT kind, region_id, pool_id, allocation_id, id, delta, 'history'
FROM instances, (VALUES ('reserved', 1), ('released', -1)) AS k (kind, delta) ORDER BY seq, delta DESC;
-- p_n grants of tenant p_tenant like the broker's, over the T4 pools of 10 regions or of
-- bench-01 (p_hot).
CREATE FUNCTION cost_batch(p_n integer, p_hot boolean, p_tenant text) RETURNS jsonb LANGUAGE sql VOLATILE AS $$
SELECT jsonb_agg(jsonb_build_object(
    'actor', 'tenant:bench', 'policies', md5('[]'),
    'allocation', jsonb_build_object('id', gen_random_uuid(), 'tenantId', (SELECT id FROM tenants WHERE name = p_tenant),
        'status', 'active', 'replicas', 1, 'placedReplicas', 1, 'leaseSeconds', 86400, 'labels', '{"app":"bench"}'::jsonb,
        'decisions', '[{"region":"bench-01","used":1,"reason":"T4: 1 of 100000000 available"}]'::jsonb,
        'request', '{"shape":{"computeClass":"gpu","qos":"default","gpuSeries":["T4"],"gpuCount":1,"cpu":4,"memoryGiB":15},"replicas":1}'::jsonb),
    'placements', jsonb_build_array(jsonb_build_object(
        'region', CASE WHEN p_hot THEN 'bench-01' ELSE format('bench-%s', lpad((1 + k % 10)::text, 2, '0')) END,
        'pool', 't4', 'count', 1, 'unit', 0, 'vSwitches', '["vsw"]'::jsonb))))
FROM generate_series(1, p_n) k
$$;
CREATE FUNCTION cost_build_only(p jsonb) RETURNS SETOF integer LANGUAGE sql AS $$ SELECT length(p::text) $$;
SQL
    # Since issue 25 the broker sends one flat object per grant, read into gpb_planned_grant.
    if sql -d "r$i" -tAc "SELECT to_regtype('gpb_planned_grant') IS NOT NULL" | grep -q t; then
        sql -d "r$i" <<'SQL'
CREATE OR REPLACE FUNCTION cost_batch(p_n integer, p_hot boolean, p_tenant text) RETURNS jsonb LANGUAGE sql VOLATILE AS $$
SELECT jsonb_agg(jsonb_build_object(
    'actor', 'tenant:bench', 'policies', md5('[]'), 'allocation_id', gen_random_uuid(),
    'tenant_id', (SELECT id FROM tenants WHERE name = p_tenant), 'status', 'active', 'replicas', 1, 'placed_replicas', 1,
    'lease_seconds', 86400, 'labels', '{"app":"bench"}'::jsonb, 'max_price_per_hour', NULL,
    'decisions', '[{"region":"bench-01","used":1,"reason":"T4: 1 of 100000000 available"}]'::jsonb,
    'request', '{"shape":{"computeClass":"gpu","qos":"default","gpuSeries":["T4"],"gpuCount":1,"cpu":4,"memoryGiB":15},"replicas":1}'::jsonb,
    'placements', jsonb_build_array(jsonb_build_object(
        'region', CASE WHEN p_hot THEN 'bench-01' ELSE format('bench-%s', lpad((1 + k % 10)::text, 2, '0')) END,
        'pool', 't4', 'count', 1, 'unit', 0, 'vswitches', '["vsw"]'::jsonb))))
FROM generate_series(1, p_n) k
$$;
SQL
    fi
    sql -d "r$i" -c "VACUUM ANALYZE"

done
pgctl -m fast -w stop

# instructions DB CALL N HOT TENANT K: of a single-user backend running K batch
# statements, CALL with its batch as %s.
instructions() {
    local input="$work/input.sql" out="$work/callgrind.out" call
    call=$(printf "$2" "cost_batch($3, $4, '$5')")
    for _ in $(seq 1 "$6"); do echo "SELECT count(*) FROM $call;"; done >"$input"
    "${runas[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$bindir/postgres" --single -D "$work/data" -c synchronous_commit=off "$1" <"$input" 2>&1 \
        | awk '/Collected/ {print $4}'
}
per_batch() { echo $(( ($(instructions "$@" $((base + batches))) - $(instructions "$@" "$base")) / batches )); }
millions() { awk -v a="$1" 'BEGIN {printf "%.2f", a / 1e6}'; }

$tsv || echo "| schema | 1 grant | 16 grants, 10 pools | 16 grants, hot pool | 16, quota | 16, budget | 16, shares |"
$tsv || echo "|---|---|---|---|---|---|---|"
for i in "${!revs[@]}"; do
    # Each schema's broker sends its own format: building it is measured in its database.
    build1=$(per_batch "r$i" 'cost_build_only(%s)' 1 false bench)
    build16=$(per_batch "r$i" 'cost_build_only(%s)' 16 false bench)
    # What the broker of that commit sends (GrantBatcher). One line: a single-user backend
    # ends a statement at each newline.
    functions=$("${runas[@]}" "$bindir/postgres" --single -D "$work/data" "r$i" 2>/dev/null \
        <<<"SELECT 'found:' || proname FROM pg_proc WHERE proname LIKE 'gpb_grant%' UNION ALL SELECT 'found:' || typname FROM pg_type WHERE typname = 'gpb_planned_grant';")
    fn='gpb_grant_batch(%s)'
    [[ $functions == *found:gpb_grant_batch_within_quotas* ]] && fn='gpb_grant_batch_within_quotas(%s)'
    [[ $functions == *found:gpb_grants_affordable* ]] && fn='gpb_grant_batch_within_quotas(gpb_grants_affordable(%s))'
    [[ $functions == *found:gpb_planned_grant* ]] \
        && fn='gpb_grant_batch(ARRAY(SELECT jsonb_populate_recordset(NULL::gpb_planned_grant, %s)))'
    one=$(( $(per_batch "r$i" "$fn" 1 false bench) - build1 ))
    spread=$(( $(per_batch "r$i" "$fn" 16 false bench) - build16 ))
    hot=$(( $(per_batch "r$i" "$fn" 16 true bench) - build16 ))
    quota=$(( $(per_batch "r$i" "$fn" 16 false quota) - build16 ))
    budget=$(( $(per_batch "r$i" "$fn" 16 false budget) - build16 ))
    shares=$(( $(per_batch "r$i" "$fn" 16 false shares) - build16 ))
    if $tsv; then
        printf 'grant.1\t%s\ngrant.16_over_10_pools\t%s\ngrant.16_on_one_pool\t%s\ngrant.16_quota\t%s\ngrant.16_budget\t%s\ngrant.16_shares\t%s\n' \
            "$one" "$spread" "$hot" "$quota" "$budget" "$shares"
    else
        echo "| ${revs[$i]} | $(millions "$one") | $(millions "$spread") | $(millions "$hot") |" \
             "$(millions "$quota") | $(millions "$budget") | $(millions "$shares") |"
    fi
done
