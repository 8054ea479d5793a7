#!/usr/bin/env bash
# What history costs the grant path, with random (v4) and time-ordered (v7) allocation
# ids: for each, a fresh PostgreSQL (fsync and full-page writes on, shared_buffers small
# so that history outgrows it, as at millions of allocations on a real server), HISTORY
# released allocations seeded like scripts/bench's, then GRANTS one-replica grants
# through gpb_grant_batch (as the broker sends them) by 4 pgbench clients, after a
# CHECKPOINT. Prints WAL bytes per grant, buffer misses per grant, index growth, and the
# bytes per released allocation (table + TOAST + indexes) of allocations, instances and
# ledger. Run by hand: scripts/bench.d/history.sh [HISTORY] [GRANTS]; needs a built
# gpubroker (swift build) for its migrations.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
history=${1:-500000}
grants=${2:-20000}
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
gpubroker=${GPUBROKER_BIN:-$(cd "$root" && swift build --show-bin-path)/gpubroker}
runas=(); [ "$(id -u)" -eq 0 ] && runas=(runuser -u postgres --)

run() { # LABEL SEEDED_ID (SQL, given g and at) NEW_ID (SQL)
    local label=$1 ids=$2 fresh=$3 dir port
    dir=$(mktemp -d /tmp/gpubroker-history.XXXXXX); chmod 755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
    "${runas[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 >/dev/null
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
shared_buffers = 32MB
max_wal_size = 4GB
checkpoint_timeout = 30min
CONF
    "${runas[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
    export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=postgres
    "$gpubroker" migrate --database-url "postgresql://postgres@127.0.0.1:$port/postgres" >/dev/null
    psql() { "$bindir/psql" -v ON_ERROR_STOP=1 -qAt "$@"; }
    psql <<SQL
INSERT INTO regions (id, kind, is_primary, vpc_id, vswitch_ids, security_group_id, state)
VALUES ('r1', 'serverless', true, 'vpc', '{vsw}', 'sg', 'active');
INSERT INTO pools (region_id, id, compute_class, qos, gpu_series, gpu_memory_gib, gpus_per_instance, cpu, memory_gib,
                   instance_type, capacity, price_per_hour)
SELECT 'r1', 'p' || n, 'gpu', '{default}', 'T4', 16, 1, 4, 15, 'ecs.gn6i', 100000000, 1 FROM generate_series(1, 10) n;
INSERT INTO tenants (id, name, token_hash) VALUES ('00000000-0000-7000-8000-000000000001', 't', '\x00');
CREATE TEMP TABLE seeded AS
SELECT $ids AS id, g, at FROM (SELECT g, now() - interval '30 days' + g * interval '1 second' AS at
                                FROM generate_series(1, $history) g) s;
INSERT INTO allocations (id, tenant_id, status, request, replicas, placed_replicas, labels, decisions,
                         lease_seconds, lease_expires_at, created_at, updated_at)
SELECT id, '00000000-0000-7000-8000-000000000001', 'released',
       '{"shape":{"computeClass":"gpu","qos":"default","gpuSeries":["T4"],"gpuCount":1,"cpu":4,"memoryGiB":15},"replicas":1}',
       1, 0, '{"app":"history"}', '[{"region":"r1","used":true,"reason":"T4: 1 of 10 available"}]', 300, NULL, at, at
FROM seeded ORDER BY g;
INSERT INTO instances (id, allocation_id, region_id, pool_id, instance_type, gpu_series, gpu_count, cpu, memory_gib,
                       vpc_id, vswitch_id, security_group_id, state, created_at, ended_at)
SELECT gen_random_uuid(), id, 'r1', 'p' || (1 + g % 10), 'ecs.gn6i', 'T4', 1, 4, 15, 'vpc', 'vsw', 'sg', 'released', at, at
FROM seeded ORDER BY g;
INSERT INTO ledger (at, kind, region_id, pool_id, allocation_id, instance_id, delta, actor)
SELECT i.created_at, k.kind, i.region_id, i.pool_id, i.allocation_id, i.id, k.delta, 'history'
FROM instances i CROSS JOIN (VALUES ('reserved', 1), ('released', -1)) k (kind, delta) ORDER BY i.seq, k.delta DESC;
VACUUM ANALYZE;
SQL
    cat >"$dir/grant.sql" <<SQL
SELECT count(*) FROM gpb_grant_batch(jsonb_build_array(jsonb_build_object(
    'allocation', jsonb_build_object('id', $fresh, 'tenantId', '00000000-0000-7000-8000-000000000001',
        'status', 'active', 'request', '{"shape":{"computeClass":"gpu","qos":"default","gpuSeries":["T4"],"gpuCount":1,"cpu":4,"memoryGiB":15},"replicas":1}'::jsonb,
        'replicas', 1, 'placedReplicas', 1, 'labels', '{"app":"bench"}'::jsonb,
        'decisions', '[{"region":"r1","used":true,"reason":"T4: 1 of 10 available"}]'::jsonb, 'leaseSeconds', 300),
    'placements', jsonb_build_array(jsonb_build_object('region', 'r1', 'pool', 'p' || (1 + :client_id % 10)::text,
        'count', 1, 'unit', NULL, 'vSwitches', '["vsw"]'::jsonb)),
    'actor', 'bench', 'policies', md5('[]'))));
SQL
    sizes="SELECT sum(pg_relation_size(i.indexrelid)) FROM pg_index i WHERE i.indrelid IN ('allocations'::regclass, 'instances'::regclass, 'ledger'::regclass)"
    local per_alloc
    per_alloc=$(psql -c "SELECT round((pg_total_relation_size('allocations') + pg_total_relation_size('instances') + pg_total_relation_size('ledger'))::numeric / count(*)) || ' B (allocations ' || round(pg_total_relation_size('allocations')::numeric / count(*)) || ', instances ' || round(pg_total_relation_size('instances')::numeric / count(*)) || ', ledger ' || round(pg_total_relation_size('ledger')::numeric / count(*)) || '; indexes ' || round(($sizes)::numeric / count(*)) || ')' FROM allocations")
    psql -c CHECKPOINT
    local lsn0 idx0 read0 started lsn1 idx1 read1 elapsed
    lsn0=$(psql -c 'SELECT pg_current_wal_lsn()')
    idx0=$(psql -c "$sizes")
    read0=$(psql -c "SELECT blks_read FROM pg_stat_database WHERE datname = 'postgres'")
    started=$(date +%s%N)
    "$bindir/pgbench" -n -c 4 -j 2 -t $((grants / 4)) -f "$dir/grant.sql" >"$dir/pgbench.log" 2>&1 \
        || { cat "$dir/pgbench.log" >&2; exit 1; }
    elapsed=$(( ($(date +%s%N) - started) / 1000000 ))
    sleep 1  # pgbench's backends flush their statistics as they exit
    lsn1=$(psql -c 'SELECT pg_current_wal_lsn()')
    idx1=$(psql -c "$sizes")
    read1=$(psql -c "SELECT blks_read FROM pg_stat_database WHERE datname = 'postgres'")
    psql -c "SELECT format('%s ids, %s history: WAL %s B/grant, %s buffer misses/grant, indexes +%s B/grant, %s grants/s; history %s per released allocation',
                           '$label', $history, round(pg_wal_lsn_diff('$lsn1', '$lsn0') / $grants), round(($read1 - $read0)::numeric / $grants, 2),
                           round(($idx1 - $idx0)::numeric / $grants), round($grants * 1000.0 / $elapsed), '$per_alloc')"
    "${runas[@]}" "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    rm -rf "$dir"
}
run random "md5(g::text || random()::text)::uuid" "gen_random_uuid()"
run v7 "gpb_uuidv7(at)" "gpb_uuidv7()"
