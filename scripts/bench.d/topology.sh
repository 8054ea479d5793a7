# Sourced by scripts/bench for BENCH_ONLY=topology: how grants, the availability query and
# the broker's memory cost as the inventory grows, from the seeded 10 regions × 4 pools to
# BENCH_TOPOLOGY_REGIONS (1000) × 20 pools, each figure also as a ratio against the small
# point of the same run.
#
# At each point: the allocation benchmark's grants (1 T4 replica, the 10 seeded instance
# types, 16 connections); then GET /v1/inventory for a T4 replica over 2 connections while 8
# connections of the same grants change pools under it (every 50 ms snapshot differs, so
# answers are computed, not replayed); the broker's highest RSS over both. The points run
# small, large, small, large (the large inventory removed and seeded again in between), so
# that other work on the machine weighs on both alike; figures add both runs of a point.
topology_regions=${BENCH_TOPOLOGY_REGIONS:-1000}
inventory_url="$base/v1/inventory?computeClass=gpu&gpuSeries=T4&gpuCount=1&cpu=4&memoryGiB=15"

topology_point() { # NAME
    sample_rss "$broker" "topology.$1" & local sampler=$!
    wrk_run "topology.$1.grants" 16 201 "$here/allocate.lua" "$base" BENCH_TYPES="$alltypes"
    ( env BENCH_EXPECT=201 BENCH_TYPES="$alltypes" wrk -t1 -c8 -d"$((warmup + seconds + 2))s" \
        -s "$here/allocate.lua" "$base" >/dev/null 2>&1 ) &
    local load=$!
    wrk_run "topology.$1.inventory" 2 200 "$here/get.lua" "$inventory_url"
    wait "$load"
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    put "topology.$1.rss_kib" "$(cat "$work/topology.$1.rss" 2>/dev/null || echo 0)"
    put "topology.$1.pools" "$("$psql" -Atc 'SELECT count(*) FROM pools')"
    put "topology.$1.regions" "$("$psql" -Atc 'SELECT count(*) FROM regions')"
}

topology_seed() {
    log "topology: seeding $topology_regions regions × 20 pools"
    # The seeded regions get 16 more pools; the new ones the seeded 4 and those 16: GPU pools of
    # six series (T4 among them, so T4 plans have a candidate in every region), general-purpose
    # and performance ones.
    sql <<SQL >/dev/null
INSERT INTO regions (id, display_name, kind, is_primary, vpc_id, vswitch_ids, security_group_id, labels, state)
SELECT format('topo-%s', lpad(g::text, 4, '0')), 'Topology region ' || g,
       CASE WHEN g % 10 = 0 THEN 'on-premises' ELSE 'serverless' END, false, 'vpc-topo-' || g,
       ARRAY['vsw-topo-' || g || '-a', 'vsw-topo-' || g || '-b'], 'sg-topo-' || g,
       jsonb_build_object('geo', 'g' || g % 3), CASE WHEN g % 97 = 0 THEN 'cordoned' ELSE 'active' END
FROM generate_series($npools + 1, $topology_regions) g;
INSERT INTO pools (region_id, id, compute_class, qos, gpu_series, gpu_memory_gib, gpus_per_instance, cpu,
                   memory_gib, instance_type, capacity, price_per_hour)
SELECT r.id, s.id, s.compute_class, '{default,best-effort}', s.gpu_series, s.gpu_memory_gib, s.gpus, s.cpu,
       s.memory_gib, s.instance_type, s.capacity, s.price
FROM regions r CROSS JOIN (VALUES
    ('t4', 'gpu', 'T4', 16.0, 1, 4.0, 15.0, 'ecs.gn6i-c4g1.xlarge', 1000, 1.30),
    ('a10', 'gpu', 'A10', 24.0, 1, 8.0, 30.0, 'ecs.gn7i-c8g1.2xlarge', 500, 2.43),
    ('l20', 'gpu', 'L20', 48.0, 1, 16.0, 120.0, 'ecs.gn8is.4xlarge', 200, 6.10),
    ('g8i', 'general-purpose', NULL, NULL, NULL, 4.0, 16.0, 'ecs.g8i.xlarge', 5000, 0.18)) AS s (
        id, compute_class, gpu_series, gpu_memory_gib, gpus, cpu, memory_gib, instance_type, capacity, price)
WHERE r.id LIKE 'topo-%';
INSERT INTO pools (region_id, id, compute_class, qos, gpu_series, gpu_memory_gib, gpus_per_instance, cpu,
                   memory_gib, instance_type, capacity, price_per_hour)
SELECT r.id, 'x' || lpad(k::text, 2, '0'),
       CASE WHEN k <= 10 THEN 'gpu' WHEN k % 2 = 0 THEN 'general-purpose' ELSE 'performance' END,
       '{default,best-effort}',
       CASE WHEN k <= 10 THEN (ARRAY['T4', 'A10', 'L20', 'H20', 'A100', 'V100'])[1 + k % 6] END,
       CASE WHEN k <= 10 THEN 24 + 8 * (k % 4) END, CASE WHEN k <= 10 THEN 1 + k % 2 END,
       4 << (k % 3), 16 << (k % 3), 'ecs.x' || k, 100 * k, 0.5 + k * 0.25
FROM regions r CROSS JOIN generate_series(1, 16) k
WHERE r.id LIKE 'topo-%' OR r.id LIKE 'bench-%';
SQL
    sql -c 'VACUUM ANALYZE regions' -c 'VACUUM ANALYZE pools' >/dev/null
}

topology_unseed() {
    sql -c "DELETE FROM pools WHERE region_id LIKE 'topo-%' OR id LIKE 'x%'" -c "DELETE FROM regions WHERE id LIKE 'topo-%'" \
        -c 'VACUUM ANALYZE regions' -c 'VACUUM ANALYZE pools' >/dev/null
}

topology_point small.1
topology_seed
topology_point large.1
topology_unseed
topology_point small.2
topology_seed
topology_point large.2
python3 "$here/scale.py" "$results" >&2
