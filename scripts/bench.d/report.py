#!/usr/bin/env python3
"""Renders scripts/bench's key=value results as the Markdown of docs/PERFORMANCE.md."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scale import curves, tenants_curves, topology_curves  # noqa: E402

r = {}
for line in open(sys.argv[1]):
    if "=" in line:
        k, v = line.rstrip("\n").split("=", 1)
        r[k] = v


def num(key, default=0.0):
    try:
        return float(r.get(key, default) or default)
    except ValueError:
        return default


def rate(name):
    """requests/s of a wrk run: only the expected answers count."""
    ok = num(f"{name}.requests") - num(f"{name}.unexpected")
    return ok / (num(f"{name}.duration_us", 1) / 1e6)


def errors(name):
    return int(num(f"{name}.unexpected") + num(f"{name}.socket_errors"))


def ms(us):
    return f"{us / 1000:.2f}"


def ratio(a, b):
    return a / b if b else 0.0


def verdict(ok):
    return "met" if ok else "**missed**"


out = []
w = out.append
w("# Performance")
w("")
w("Written by `scripts/bench` (see README, \"Benchmark\"); the latest run replaces this file.")
w("")
w(f"Machine: {r.get('nproc')} cores ({r.get('cpu')}), {r.get('memory')} memory, {r.get('kernel')}; "
  f"PostgreSQL {r.get('pg_version')} (fsync={r.get('fsync')}, otherwise defaults, TCP loopback); "
  f"{r.get('date')}; commit {r.get('commit')}; load average before the runs {r.get('load_before')}, "
  f"after {r.get('load_after')} (anything above 0 is other work sharing the cores). Each figure: {r.get('seconds')} s after a warm-up; wrk and "
  f"pgbench with 2 threads on the same 2 cores as the broker and PostgreSQL. Broker: default pool of 16 "
  f"database connections, {r.get('http_threads')} HTTP threads. Seeded: 10 regions × 4 pools (T4 pools of "
  f"capacity 1,000,000, the API maximum), {int(num('history')):,} released allocations of history with their instances and "
  f"ledger rows; `VACUUM ANALYZE` before the runs.")
w("")
w("## Allocations: `POST /v1/allocations` (1 T4 replica, default placement) vs pgbench")
w("")
w("pgbench ceiling: one transaction of separate statements (`-M prepared`): conditional counter update "
  "on a pool row, insert an allocation row, insert two ledger rows, commit.")
w("")
w("Batch: the mean number of grants the broker sent together in one `gpb_grant_batch` statement during the run "
  "(`grant_batched_grants_total` / `grant_batches_total` from `/metrics`).")
w("")
w("| pools | connections | broker allocations/s | p50 ms | p99 ms | p99/p50 | errors (non-201) | batch | pgbench tps | pgbench latency ms | broker / pgbench |")
w("|---|---|---|---|---|---|---|---|---|---|---|")
for pools, key in (("10", "10"), ("1 (hot)", "1")):
    for c in ("16", "64"):
        n = f"alloc{key}.c{c}"
        p = f"pg_alloc{key}.c{c}"
        a = rate(n)
        p50, p99 = num(f"{n}.p50_us"), num(f"{n}.p99_us")
        batch = ratio(num(n + ".batched"), num(n + ".batches"))
        w(f"| {pools} | {c} | {a:,.0f} | {ms(p50)} | {ms(p99)} | {ratio(p99, p50):.1f} | {errors(n)} | {batch:.1f} | "
          f"{num(p + '.tps'):,.0f} | {num(p + '.latency_ms'):.2f} | {ratio(a, num(p + '.tps')):.2f} |")
w("")
w(f"`gpubroker verify` after the allocation runs: exit {r.get('verify_exit')}.")
w("")
w("## Reads")
w("")
w("| what | connections | requests/s | p50 ms | p99 ms | errors | compared with | its figure | ratio |")
w("|---|---|---|---|---|---|---|---|---|")
for c in ("16", "64"):
    pgs = num(f"pg_select.c{c}.tps")
    ch = rate(f"c_healthz.c{c}")
    rows = [
        ("`GET /v1/inventory?computeClass=gpu&gpuSeries=T4&gpuCount=1&cpu=4&memoryGiB=15`", f"inventory.c{c}", "pgbench -S tps", pgs),
        ("`GET /v1/allocations/{id}`", f"get.c{c}", "pgbench -S tps", pgs),
        ("`GET /healthz` (broker)", f"healthz.c{c}", "minimal C libmicrohttpd /healthz, polling like the broker", ch),
        ("`GET /healthz` (broker)", f"healthz.c{c}", "the same C server with epoll", rate(f"c_healthz_epoll.c{c}")),
        ("`GET /healthz` (minimal C libmicrohttpd server, poll)", f"c_healthz.c{c}", "", 0),
        ("`GET /healthz` (minimal C libmicrohttpd server, epoll)", f"c_healthz_epoll.c{c}", "", 0),
    ]
    for label, n, other, figure in rows:
        v = rate(n)
        cmp = f"{other} | {figure:,.0f} | {ratio(v, figure):.2f}" if other else " | | "
        w(f"| {label} | {c} | {v:,.0f} | {ms(num(n + '.p50_us'))} | {ms(num(n + '.p99_us'))} | {errors(n)} | {cmp} |")
    w(f"| pgbench select-only (`-S`, scale 10, `-M prepared`) | {c} | {pgs:,.0f} | | | {int(num(f'pg_select.c{c}.failed'))} | | | |")
w("")
w("## Memory and planner")
w("")
mib = lambda k: num(k) / 1024
w("| figure | value |")
w("|---|---|")
w(f"| broker RSS idle (after seeding) | {mib('rss_idle_kib'):.1f} MiB |")
w(f"| broker RSS, highest under 64 connections of `POST /v1/allocations` | {mib('rss_alloc64_kib'):.1f} MiB |")
w(f"| broker RSS, highest under 64 connections of reads | {mib('rss_read64_kib'):.1f} MiB |")
w(f"| broker VmHWM at the end of the run | {mib('rss_hwm_kib'):.1f} MiB |")
w(f"| planner: placement decisions/s, 100 regions × 20 pools, one thread (wall clock) | {num('planner_per_s'):,.0f} |")
w(f"| planner: placement decisions per second of that thread's CPU time | {num('planner_per_cpu_s'):,.0f} |")
w(f"| planner, primary region full (every decision ranks all 100 regions), wall clock | {num('planner_full_per_s'):,.0f} |")
w(f"| planner, primary region full, per CPU second | {num('planner_full_per_cpu_s'):,.0f} |")
w("")

a16, p16 = rate("alloc10.c16"), num("pg_alloc10.c16.tps")
h16, ph16 = rate("alloc1.c16"), num("pg_alloc1.c16.tps")
h64, ph64 = rate("alloc1.c64"), num("pg_alloc1.c64.tps")
total_errors = sum(errors(f"alloc{k}.c{c}") for k in ("10", "1") for c in ("16", "64"))
rss64 = max(mib("rss_alloc64_kib"), mib("rss_read64_kib"))
targets = [
    ("allocations/s ≥ 1.2 × pgbench, 16 connections, 10 pools", f"{a16:,.0f} / {p16:,.0f} = {ratio(a16, p16):.2f}×", ratio(a16, p16) >= 1.2),
    ("zero errors in every allocation run", f"{total_errors}", total_errors == 0),
    ("`gpubroker verify` exits 0", f"{r.get('verify_exit')}", r.get("verify_exit") == "0"),
    ("one hot pool ≥ 2 × pgbench on one row, 16 connections", f"{h16:,.0f} / {ph16:,.0f} = {ratio(h16, ph16):.2f}×", ratio(h16, ph16) >= 2),
    ("one hot pool ≥ 2 × pgbench on one row, 64 connections", f"{h64:,.0f} / {ph64:,.0f} = {ratio(h64, ph64):.2f}×", ratio(h64, ph64) >= 2),
]
for key, label in (("10", "10 pools"), ("1", "hot pool")):
    n = f"alloc{key}.c16"
    q = ratio(num(n + ".p99_us"), num(n + ".p50_us"))
    targets.append((f"p99 ≤ 3 × p50 at 16 connections, {label}", f"{ms(num(n + '.p99_us'))} / {ms(num(n + '.p50_us'))} ms = {q:.1f}×", 0 < q <= 3))
for c in ("16", "64"):
    b, cc = rate(f"healthz.c{c}"), rate(f"c_healthz.c{c}")
    targets.append((f"/healthz ≥ 0.8 × minimal C server (same polling mode), {c} connections", f"{b:,.0f} / {cc:,.0f} = {ratio(b, cc):.2f}×", ratio(b, cc) >= 0.8))
for c in ("16", "64"):
    i, s = rate(f"inventory.c{c}"), num(f"pg_select.c{c}.tps")
    targets.append((f"GET /v1/inventory ≥ 0.5 × pgbench -S, {c} connections", f"{i:,.0f} / {s:,.0f} = {ratio(i, s):.2f}×", ratio(i, s) >= 0.5))
targets.append(("RSS ≤ 64 MiB under 64 connections", f"{rss64:.1f} MiB", 0 < rss64 <= 64))
targets.append(("planner ≥ 20,000 decisions/s (wall clock)", f"{num('planner_per_s'):,.0f}", num("planner_per_s") >= 20000))
targets.append(("planner ≥ 20,000 decisions per CPU second", f"{num('planner_per_cpu_s'):,.0f}", num("planner_per_cpu_s") >= 20000))
targets.append(("planner ≥ 20,000 decisions/s, primary full (wall clock)", f"{num('planner_full_per_s'):,.0f}", num("planner_full_per_s") >= 20000))
w("## Targets")
w("")
w("| target | measured | |")
w("|---|---|---|")
for label, value, ok in targets:
    w(f"| {label} | {value} | {verdict(ok)} |")
w("")
w("## Round trips per request")
w("")
w("Statements PostgreSQL received while one request ran (`log_statement = all`), against 6 for the "
  "pgbench transaction (BEGIN, UPDATE, 3 × INSERT, COMMIT) and 1 for `pgbench -S`.")
w("")
w("| request | statements |")
w("|---|---|")
for name, label in (("grant", "`POST /v1/allocations`"), ("inventory", "`GET /v1/inventory?…`"), ("get", "`GET /v1/allocations/{id}`")):
    w(f"| {label} | {r.get(name + '.statements', '?')} |")
if len(sys.argv) > 2:
    import os, re
    path = os.path.join(sys.argv[2], "grant.statements")
    if os.path.exists(path):
        w("")
        w("The grant's statements, in order:")
        w("")
        w("```")
        for line in open(path):
            m = re.search(r"LOG:  (?:statement|execute [^:]*): (.*)", line)
            text = " ".join((m.group(1) if m else line).split())
            w(text[:110] + ("…" if len(text) > 110 else ""))
        w("```")
out += curves(r)
out += topology_curves(r)
out += tenants_curves(r)
print("\n".join(out))
