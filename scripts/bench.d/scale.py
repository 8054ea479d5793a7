#!/usr/bin/env python3
"""The BENCH_ONLY=scale curves of scripts/bench's results, each as a ratio against the
smallest point of the same run. Also used by report.py."""
import sys


def readers(r):
    """num(key): a result as a number (0 when absent); rate(name): a wrk run's good answers per second."""
    def num(key):
        try:
            return float(r.get(key) or 0)
        except ValueError:
            return 0.0

    def rate(name):
        ok = num(f"{name}.requests") - num(f"{name}.unexpected")
        return ok / (num(f"{name}.duration_us") / 1e6 or 1)

    return num, rate


def ratio(a, b):
    return f"{a / b:.2f}×" if b else "-"


def curves(r):
    """Markdown lines; empty when the run had no scale step."""
    if "scale.history" not in r:
        return []

    num, rate = readers(r)

    history = int(num("scale.history"))
    out = ["## Scale: grants against history, with and without a quota; lease expiry", "",
           "| what | per s, no history | per s, %s released allocations | × vs no history | p99 ms (no history / history) |"
           % f"{history:,}", "|---|---:|---:|---:|---:|"]
    for kind in ("free", "quota"):
        a, b = f"scale.{kind}.h0", f"scale.{kind}.h{history}"
        out.append(f"| {'no quota' if kind == 'free' else 'quota'} | {rate(a):,.0f} | {rate(b):,.0f} | "
                   f"{ratio(rate(b), rate(a))} | {num(a + '.p99_us') / 1000:.1f} / {num(b + '.p99_us') / 1000:.1f} |")
    out.append(f"| quota ÷ no quota | {ratio(rate('scale.quota.h0'), rate('scale.free.h0'))} | "
               f"{ratio(rate(f'scale.quota.h{history}'), rate(f'scale.free.h{history}'))} | | |")
    a, b = "scale.list.h0", f"scale.list.h{history}"
    out.append(f"| `GET /v1/allocations?status=active&limit=50` of the quota tenant, /s | {rate(a):,.0f} | "
               f"{rate(b):,.0f} | {ratio(rate(b), rate(a))} | {num(a + '.p99_us') / 1000:.1f} / {num(b + '.p99_us') / 1000:.1f} |")
    if "scale.verify_next_ms" in r:
        out.append(f"| `gpubroker verify` ms: first after the history / next, from its checkpoint / --full | "
                   f"{num('scale.verify_first_ms'):,.0f} | {num('scale.verify_next_ms'):,.0f} | "
                   f"{ratio(num('scale.verify_next_ms'), num('scale.verify_first_ms'))} | {num('scale.verify_full_ms'):,.0f} --full |")
    base, load = num("scale.expiry_baseline.p99_us"), num("scale.expiry_load.p99_us")
    out += ["", f"Lease expiry: {int(num('scale.expiries')):,} leases due at once, "
            f"{num('scale.expiry_ms') / 1000:.1f} s until all were expired by the workers "
            f"({int(num('scale.expiry_left')):,} left); grants meanwhile {rate('scale.expiry_load'):,.0f}/s, p99 "
            f"{load / 1000:.1f} ms = {ratio(load, base)} the same load without expiries "
            f"({rate('scale.expiry_baseline'):,.0f}/s, p99 {base / 1000:.1f} ms); "
            f"{int(num('scale.expiry_deadlocks'))} deadlocks logged; verify exit {r.get('scale.verify_exit')}.", ""]
    return out


def topology_curves(r):
    """Markdown lines of the BENCH_ONLY=topology step; empty when the run had none. Each point
    ran twice (small, large, small, large): rates add both runs, p50 takes their mean, p99 shows
    both, RSS comes from the first runs (memory once taken is not given back)."""
    if "topology.large.2.pools" not in r:
        return []
    num, _ = readers(r)

    def rate(point, run):
        names = [f"topology.{point}.{k}.{run}" for k in (1, 2)]
        ok = sum(num(f"{n}.requests") - num(f"{n}.unexpected") for n in names)
        return ok / (sum(num(f"{n}.duration_us") for n in names) / 1e6 or 1)

    def both(point, key, combine):
        return combine(num(f"topology.{point}.1.{key}"), num(f"topology.{point}.2.{key}"))

    def mean(a, b):
        return (a + b) / 2

    def where(p):
        return f"{int(num(f'topology.{p}.2.regions')):,} regions, {int(num(f'topology.{p}.2.pools')):,} pools"

    out = ["## Scale: topology", "",
           f"| what | {where('small')} | {where('large')} | × vs small |", "|---|---:|---:|---:|"]
    a, b = rate("small", "grants"), rate("large", "grants")
    out.append(f"| grants/s (1 T4 replica, 16 connections) | {a:,.0f} | {b:,.0f} | {ratio(b, a)} |")
    a, b = both("small", "inventory.p50_us", mean) / 1000, both("large", "inventory.p50_us", mean) / 1000
    out.append(f"| `GET /v1/inventory` p50 ms (2 connections, grants running) | {a:.2f} | {b:.2f} | {ratio(b, a)} |")

    def p99(point):
        return " / ".join(f"{num(f'topology.{point}.{k}.inventory.p99_us') / 1000:.2f}" for k in (1, 2))
    out.append(f"| `GET /v1/inventory` p99 ms, each run | {p99('small')} | {p99('large')} | |")
    a, b = num("topology.small.1.rss_kib") / 1024, num("topology.large.1.rss_kib") / 1024
    out.append(f"| broker RSS, highest, MB (first runs) | {a:.0f} | {b:.0f} | {ratio(b, a)} |")
    return out + [""]


def tenants_curves(r):
    """Markdown lines of the BENCH_ONLY=tenants step; empty when the run had none."""
    if "tenants.large.count" not in r:
        return []

    num, rate = readers(r)

    s, l = "tenants.small", "tenants.large"
    out = ["## Scale: tenants", "",
           f"| what | {int(num(s + '.count')):,} tenants | {int(num(l + '.count')):,} tenants | × vs small |",
           "|---|---:|---:|---:|"]
    for what, key in (("`GET /v1/admin/tenants?limit=50`/s (2 connections)", "list"),
                      ("grants/s (1 T4 replica, 16 connections)", "grants")):
        a, b = rate(f"{s}.{key}"), rate(f"{l}.{key}")
        out.append(f"| {what} | {a:,.0f} | {b:,.0f} | {ratio(b, a)} |")
        a, b = num(f"{s}.{key}.p50_us") / 1000, num(f"{l}.{key}.p50_us") / 1000
        out.append(f"| … p50 ms | {a:.2f} | {b:.2f} | {ratio(b, a)} |")
    return out + [""]


if __name__ == "__main__":
    results = {}
    for line in open(sys.argv[1]):
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            results[k] = v
    print("\n".join(curves(results) + topology_curves(results) + tenants_curves(results)))
