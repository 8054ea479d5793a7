# Sourced by scripts/bench for BENCH_ONLY=tenants: the first page of GET /v1/admin/tenants
# (2 connections) and the allocation benchmark's grants (16 connections), at 100 tenants
# and after BENCH_TENANTS (50000) more, each figure also as a ratio against the small point
# of the same run. Both points answer full pages of 50: a smaller first point would
# compare page sizes, not list lengths.
bulk_tenants=${BENCH_TENANTS:-50000}

seed_tenants() { # FIRST LAST
    sql <<SQL >/dev/null
INSERT INTO tenants (id, name, token_hash, quota)
SELECT gen_random_uuid(), 'bulk-' || g, sha256(('bulk-token-' || g)::bytea),
       CASE WHEN g % 2 = 0 THEN '{"instances": 100}'::jsonb ELSE '{}' END
FROM generate_series($1, $2) g;
SQL
    sql -c 'VACUUM ANALYZE tenants' >/dev/null
}

tenants_point() { # NAME
    wrk_run "tenants.$1.list" 2 200 "$here/get.lua" "$base/v1/admin/tenants?limit=50" BENCH_TOKEN="$admin"
    wrk_run "tenants.$1.grants" 16 201 "$here/allocate.lua" "$base" BENCH_TYPES="$alltypes"
    put "tenants.$1.count" "$("$psql" -Atc 'SELECT count(*) FROM tenants')"
}

seed_tenants 1 100
tenants_point small
log "tenants: seeding $bulk_tenants tenants"
seed_tenants 101 $((bulk_tenants + 100))
tenants_point large
python3 "$here/scale.py" "$results" >&2
