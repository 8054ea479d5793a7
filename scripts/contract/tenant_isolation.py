"""Tenant B gets 404 on every verb of tenant A's allocations and policies, and
tenant A's objects are unchanged afterwards (object-level authorization)."""
import json
import os
import sys

import requests

url = os.environ["CONTRACT_URL"]
with open(os.path.join(os.environ["CONTRACT_WORK"], "tokens.json")) as f:
    tokens = json.load(f)
a = {"Authorization": f"Bearer {tokens['tenant-a']}"}
b = {"Authorization": f"Bearer {tokens['tenant-b']}"}
failures = []
checked = 0


def call(method, path, headers, body=None):
    return requests.request(method, url + path, json=body, headers=headers, timeout=30)


def expect(response, status, what):
    global checked
    checked += 1
    if response.status_code != status:
        failures.append(f"{what}: {response.status_code}, wanted {status}: {response.text[:200]}")
    elif status == 404 and response.json().get("code") != "not_found":
        failures.append(f"{what}: 404 without code not_found: {response.text[:200]}")


created = call("POST", "/v1/allocations", a, {"computeClass": "general-purpose", "cpu": 2, "memoryGiB": 4,
                                               "replicas": 2, "labels": {"app": "isolation"}})
if created.status_code != 201:
    sys.exit(f"tenant-isolation: tenant A could not allocate: {created.status_code} {created.text}")
allocation = created.json()
aid = allocation["id"]
policy = call("PUT", "/v1/policies/isolation", a, {"selector": {"app": "isolation"}, "units": [{"regions": ["*"]}]})
if policy.status_code not in (200, 201):
    sys.exit(f"tenant-isolation: tenant A could not create a policy: {policy.status_code} {policy.text}")

expect(call("GET", f"/v1/allocations/{aid}", b), 404, "B GET A's allocation")
expect(call("PATCH", f"/v1/allocations/{aid}", b, {"replicas": 1}), 404, "B PATCH A's allocation")
expect(call("POST", f"/v1/allocations/{aid}/renew", b, {}), 404, "B renews A's allocation")
expect(call("GET", f"/v1/allocations/{aid}/events", b), 404, "B reads A's events")
expect(call("DELETE", f"/v1/allocations/{aid}", b), 404, "B DELETE A's allocation")
expect(call("GET", "/v1/policies/isolation", b), 404, "B GET A's policy")
expect(call("DELETE", "/v1/policies/isolation", b), 404, "B DELETE A's policy")
listed = call("GET", "/v1/allocations", b).json()["allocations"]
checked += 1
if any(item["id"] == aid for item in listed):
    failures.append("B lists A's allocation")
policies = call("GET", "/v1/policies", b).json()["policies"]
checked += 1
if any(item["name"] == "isolation" for item in policies):
    failures.append("B lists A's policy")

# Nothing B did changed A's objects.
after = call("GET", f"/v1/allocations/{aid}", a)
expect(after, 200, "A GET own allocation")
if after.status_code == 200:
    for field in ("status", "replicas", "placedReplicas", "leaseExpiresAt"):
        if after.json().get(field) != allocation.get(field):
            failures.append(f"A's allocation {field} changed: {allocation.get(field)} -> {after.json().get(field)}")
expect(call("GET", "/v1/policies/isolation", a), 200, "A GET own policy")
expect(call("DELETE", f"/v1/allocations/{aid}", a), 200, "A releases own allocation")
expect(call("DELETE", "/v1/policies/isolation", a), 204, "A deletes own policy")

if failures:
    print("tenant-isolation: FAILED", *failures, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print(f"tenant-isolation: {checked} checks, tenant B gets 404 on every verb of tenant A's objects")
