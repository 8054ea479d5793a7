#!/usr/bin/env bash
# List latency, verify and retention against HISTORY (1000000) released allocations of one
# tenant with 60 active ones, through a debug broker, one client at a time. Run by hand:
# scripts/with-postgres scripts/bench.d/retention.sh [HISTORY] (after swift build). Prints
# list p50/p99 at no history, at HISTORY and after retention; verify without a checkpoint,
# --full and from the checkpoint; the time a broker with --retain-history 31d takes to
# remove the history (it ended 40 days ago); verify --full afterwards.
set -euo pipefail
history=${1:-1000000}
bin=$(cd "$(dirname "$0")/../.." && swift build --show-bin-path)/gpubroker
url=$GPUBROKER_TEST_DATABASE_URL
$bin migrate --database-url "$url" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
$bin serve --database-url "$url" --admin-token bench-admin-token-0123456789abcdef --listen 127.0.0.1:$port --log-level warning >/dev/null 2>&1 &
srv=$!
trap 'kill $srv' EXIT
for _ in $(seq 100); do curl -fs http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.2; done
curl -fs -X POST http://127.0.0.1:$port/v1/admin/regions -H 'Authorization: Bearer adm' -H 'Content-Type: application/json' \
  -d '{"id":"r1","kind":"serverless","primary":true,"vpcId":"v","vSwitchIds":["s"],"securityGroupId":"g"}' >/dev/null
curl -fs -X PUT http://127.0.0.1:$port/v1/admin/regions/r1/pools/g -H 'Authorization: Bearer adm' -H 'Content-Type: application/json' \
  -d '{"computeClass":"general-purpose","cpu":4,"memoryGiB":16,"instanceType":"ecs.g8i.xlarge","capacity":100000,"pricePerHour":0.18}' >/dev/null
token=$(curl -fs -X POST http://127.0.0.1:$port/v1/admin/tenants -H 'Authorization: Bearer adm' -H 'Content-Type: application/json' -d '{"name":"t"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
tenant=$(psql -Atc "SELECT id FROM tenants WHERE name = 't'")
measure() {
python3 - "$port" "$token" "$1" <<'PY'
import sys, time, urllib.request
port, token, label = sys.argv[1:]
req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/allocations?status=active&limit=50", headers={"Authorization": f"Bearer {token}"})
for _ in range(20): urllib.request.urlopen(req).read()
t = []
for _ in range(300):
    s = time.perf_counter(); body = urllib.request.urlopen(req).read(); t.append((time.perf_counter() - s) * 1000)
t.sort()
n = body.count(b'leaseExpiresAt')
print(f"{label}: list p50 {t[150]:.2f} ms, p99 {t[296]:.2f} ms, {n} items")
PY
}
for i in $(seq 60); do
  curl -fs -X POST http://127.0.0.1:$port/v1/allocations -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"computeClass":"general-purpose","cpu":1,"memoryGiB":2,"replicas":1,"leaseSeconds":86400}' >/dev/null
done
psql -qc 'VACUUM ANALYZE'
measure "history 0"
psql -q <<SQL
CREATE TEMP TABLE seeded AS
SELECT gpb_uuidv7(now() - interval '3 days' + g * interval '1 millisecond') AS id, g FROM generate_series(1, $history) g;
INSERT INTO allocations (id, tenant_id, status, request, replicas, placed_replicas, labels, decisions,
                         lease_seconds, lease_expires_at, created_at, updated_at)
SELECT id, '$tenant', 'released',
       '{"shape":{"computeClass":"general-purpose","qos":"default","gpuSeries":[],"gpuCount":0,"cpu":1,"memoryGiB":2},"replicas":1}',
       1, 0, '{"app":"history"}', '[]', 300, NULL, now() - interval '41 days', now() - interval '40 days'
FROM seeded ORDER BY g;
INSERT INTO instances (id, allocation_id, region_id, pool_id, instance_type, gpu_series, gpu_count, cpu, memory_gib,
                       vpc_id, vswitch_id, security_group_id, state, created_at, ended_at)
SELECT md5('i' || s.id::text)::uuid, s.id, 'r1', 'g', 'ecs.g8i.xlarge', NULL, 0, 4, 16, 'v', 's', 'g', 'released',
       now() - interval '41 days', now() - interval '40 days'
FROM seeded s ORDER BY g;
INSERT INTO ledger (at, kind, region_id, pool_id, allocation_id, instance_id, delta, actor)
SELECT i.created_at, k.kind, i.region_id, i.pool_id, i.allocation_id, i.id, k.delta, 'history'
FROM instances i JOIN seeded s ON s.id = i.allocation_id, (VALUES ('reserved', 1), ('released', -1)) k (kind, delta)
ORDER BY i.seq, k.delta DESC;
VACUUM ANALYZE;
SQL
measure "history $history"
psql -Atc "SELECT 'bytes per allocation (allocations+instances+ledger, with TOAST and indexes): ' || round((pg_total_relation_size('allocations') + pg_total_relation_size('instances') + pg_total_relation_size('ledger'))::numeric / count(*)) FROM allocations"
for full in "" --full; do
  s=$(date +%s%N); out=$($bin verify $full --database-url "$url"); echo "verify $full: $(( ($(date +%s%N) - s) / 1000000 )) ms: $out"
done
s=$(date +%s%N); out=$($bin verify --database-url "$url"); echo "verify again: $(( ($(date +%s%N) - s) / 1000000 )) ms: $out"
kill $srv; wait $srv 2>/dev/null || true
s=$(date +%s%N)
$bin serve --database-url "$url" --admin-token bench-admin-token-0123456789abcdef --listen 127.0.0.1:$port --retain-history 31d --log-level info >/dev/null 2>&1 &
srv=$!
while [ "$(psql -Atc 'SELECT count(*) FROM allocations')" -gt 60 ]; do sleep 1; done
echo "retention: $(( ($(date +%s%N) - s) / 1000000 )) ms to remove $history allocations (from broker start)"
psql -qc 'VACUUM ANALYZE'
psql -Atc "SELECT 'after: ' || count(*) || ' allocations, ' || (SELECT count(*) FROM ledger) || ' ledger rows, retired ' || (SELECT sum(row_count) FROM ledger_retired) FROM allocations"
measure "after retention"
s=$(date +%s%N); out=$($bin verify --full --database-url "$url"); echo "verify --full after retention: $(( ($(date +%s%N) - s) / 1000000 )) ms: $out"
