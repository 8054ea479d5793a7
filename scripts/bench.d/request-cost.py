#!/usr/bin/env python3
"""Heap allocations the broker process makes per request: a measure other load on the
machine does not move, for the instruction guard (scripts/instruction-guard) and for
comparing builds. (Instructions would be better; Debian 12's valgrind crashes on Swift 6
binaries and this VM gives perf no instruction counter: see malloc-count.c.)

Usage: scripts/with-postgres scripts/bench.d/request-cost.py GPUBROKER_BINARY [--tsv]

Runs the broker with malloc-count.so preloaded against a fresh database in the cluster of
GPUBROKER_TEST_DATABASE_URL, seeds one region with a T4 pool and a tenant through the admin
API, then for each request kind: WARMUP requests (caches filled, code paths touched), then
ROUNDS times the count so far, COUNT requests on one keep-alive connection, a pause for work
the requests left behind (notifications), and the count again: the least difference over
COUNT is one request.
The workers' timers are pushed out of the run, so only the requests are counted. Prints
allocations per request (with --tsv: "request.<kind>.allocations<TAB>hundredths").
"""
import glob
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

# The least of ROUNDS: the broker's timers (the 50 ms inventory snapshot, 1 s token and
# tenant caches) only ever add to a round, by how long it took.
WARMUP, COUNT, ROUNDS = 20, 200, 5
ADMIN = "request-cost-admin-token-0123456789abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, binary, database_url, work):
        self.port = free_port()
        self.counts = os.path.join(work, "counts")
        shim = os.path.join(work, "malloc-count.so")
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", shim,
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "malloc-count.c")], check=True)
        self.log = open(os.path.join(work, "broker.log"), "w")
        self.process = subprocess.Popen(
            [binary, "serve",
             "--database-url", database_url, "--admin-token", ADMIN, "--listen", f"127.0.0.1:{self.port}",
             # Workers and metric readings on timers would land in the counts at random.
             "--reconcile-interval", "100000", "--usage-metrics-interval", "100000",
             "--log-level", "warning", "--http-threads", "2", "--db-pool-size", "2"],
            stdout=self.log, stderr=subprocess.STDOUT,
            env=dict(os.environ, LD_PRELOAD=shim, MALLOC_COUNT_FILE=self.counts))
        deadline = time.monotonic() + 120
        while True:
            try:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                self.call("GET", "/healthz")
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.process.kill()
                    with open(self.log.name) as f:
                        sys.exit("request-cost: the broker did not start:\n" + f.read()[-2000:])
                time.sleep(0.5)

    def call(self, method, path, body=None, token=None, expect=(200, 201)):
        headers = {"Authorization": f"Bearer {token or ADMIN}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(body)
        try:
            self.connection.request(method, path, body=body, headers=headers)
            answer = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The keep-alive connection was dropped under the request (seen once in CI, on a
            # quiet machine): once more on a new one. A round with a reconnect counts more,
            # and the least of the rounds leaves it out.
            if self.process.poll() is not None:
                raise
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.connection.request(method, path, body=body, headers=headers)
            answer = self.connection.getresponse()
        data = answer.read()
        if answer.status not in expect:
            sys.exit(f"request-cost: {method} {path} answered {answer.status}: {data[:300]!r}")
        return json.loads(data) if data and answer.getheader("Content-Type", "").endswith("json") else None

    def allocations(self):
        """Heap allocations since the process started."""
        if os.path.exists(self.counts):
            os.remove(self.counts)
        os.kill(self.process.pid, signal.SIGUSR2)
        for _ in range(100):
            if os.path.exists(self.counts):
                with open(self.counts) as f:
                    line = f.read()
                if line.endswith("\n"):
                    return int(line.split()[0])
            time.sleep(0.05)
        sys.exit("request-cost: the broker did not report its allocations")

    def stop(self):
        self.connection.close()
        self.process.terminate()
        self.process.wait(timeout=120)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary, tsv = sys.argv[1], "--tsv" in sys.argv[2:]
    base = os.environ["GPUBROKER_TEST_DATABASE_URL"]
    subprocess.run(["psql", base, "-qc", "SET client_min_messages = warning", "-c", "DROP DATABASE IF EXISTS request_cost", "-c", "CREATE DATABASE request_cost"],
                   check=True, stdout=subprocess.DEVNULL)
    database_url = urllib.parse.urlunparse(urllib.parse.urlparse(base)._replace(path="/request_cost"))
    work = tempfile.mkdtemp(prefix="gpubroker-request-cost.")
    broker = None
    try:
        broker = Broker(binary, database_url, work)
        broker.call("POST", "/v1/admin/regions", {
            "id": "cost-1", "kind": "serverless", "primary": True, "vpcId": "vpc-1", "vSwitchIds": ["vsw-1a", "vsw-1b"],
            "securityGroupId": "sg-1"})
        broker.call("PUT", "/v1/admin/regions/cost-1/pools/t4", {
            "computeClass": "gpu", "gpuSeries": "T4", "gpuMemoryGiB": 16, "gpusPerInstance": 1, "cpu": 4,
            "memoryGiB": 15, "instanceType": "ecs.gn6i-c4g1.xlarge", "capacity": 1000000, "pricePerHour": 1.1})
        token = broker.call("POST", "/v1/admin/tenants", {"name": "cost"})["token"]
        one = {"computeClass": "gpu", "gpuSeries": ["T4"], "gpuCount": 1, "cpu": 4, "memoryGiB": 15, "replicas": 1}
        held = broker.call("POST", "/v1/allocations", one, token=token)["id"]
        kinds = [
            ("request.healthz", lambda: broker.call("GET", "/healthz")),
            ("request.get_allocation", lambda: broker.call("GET", f"/v1/allocations/{held}", token=token)),
            ("request.post_allocation", lambda: broker.call("POST", "/v1/allocations", one, token=token)),
        ]
        figures = []
        for name, request in kinds:
            for _ in range(WARMUP):
                request()
            rounds = []
            for _ in range(ROUNDS):
                before = broker.allocations()
                for _ in range(COUNT):
                    request()
                time.sleep(0.2)
                rounds.append((broker.allocations() - before) / COUNT)
            figures.append((name, min(rounds)))
    finally:
        if broker:
            broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    if tsv:
        for name, per_request in figures:
            print(f"{name}.allocations\t{round(per_request * 100)}")
    else:
        print("| request | heap allocations per request |\n|---|---|")
        for name, per_request in figures:
            print(f"| {name.removeprefix('request.')} | {per_request:.2f} |")


if __name__ == "__main__":
    main()
