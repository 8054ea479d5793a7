"""Seeds the contract test's broker through its API and writes the WFC auth document.

Two regions (a serverless primary and an on-premises data center), GPU and
general-purpose pools with room for everything schemathesis asks for, and two
tenants whose tokens become the peers `tenant-a` and `tenant-b` of the object-level
authorization check. The admin token comes last in the document: the escalating
auth provider tries the tenants first and moves admin operations on to it.
"""
import json
import os
import sys

import requests

url = os.environ["CONTRACT_URL"]
admin = {"Authorization": f"Bearer {os.environ['CONTRACT_ADMIN_TOKEN']}"}
work = os.environ["CONTRACT_WORK"]


def call(method, path, body, expect):
    response = requests.request(method, url + path, json=body, headers=admin, timeout=30)
    if response.status_code not in expect:
        sys.exit(f"seed: {method} {path}: {response.status_code} {response.text}")
    return response.json()


regions = [
    {"id": "cn-beijing", "displayName": "China (Beijing)", "kind": "serverless", "primary": True,
     "vpcId": "vpc-beijing", "vSwitchIds": ["vsw-beijing-a", "vsw-beijing-b"], "securityGroupId": "sg-beijing",
     "labels": {"geo": "north"}},
    {"id": "idc-shanghai", "displayName": "Shanghai data center", "kind": "on-premises",
     "vpcId": "vpc-idc", "vSwitchIds": ["vsw-idc-rack-a"], "securityGroupId": "sg-idc",
     "labels": {"geo": "east", "site": "idc"}},
]
for region in regions:
    call("POST", "/v1/admin/regions", region, {201})

pools = {
    "cn-beijing": {
        "t4": {"computeClass": "gpu", "qos": ["default", "best-effort"], "gpuSeries": "T4", "gpuMemoryGiB": 16,
               "gpusPerInstance": 1, "cpu": 4, "memoryGiB": 15, "instanceType": "ecs.gn6i-c4g1.xlarge",
               "capacity": 100000, "pricePerHour": 1.28},
        "a10": {"computeClass": "gpu", "qos": ["default", "best-effort"], "gpuSeries": "A10", "gpuMemoryGiB": 24,
                "gpusPerInstance": 1, "cpu": 8, "memoryGiB": 30, "instanceType": "ecs.gn7i-c8g1.2xlarge",
                "capacity": 100000, "pricePerHour": 2.1},
        "g8i": {"computeClass": "general-purpose", "cpu": 2, "memoryGiB": 8, "instanceType": "ecs.g8i.large",
                "capacity": 100000, "pricePerHour": 0.09, "deferScaleInSeconds": 300},
    },
    "idc-shanghai": {
        "l20": {"computeClass": "gpu", "qos": ["default"], "gpuSeries": "L20", "gpuMemoryGiB": 48,
                "gpusPerInstance": 1, "cpu": 16, "memoryGiB": 64, "instanceType": "idc.l20",
                "capacity": 100000, "pricePerHour": 0.5},
        "cpu": {"computeClass": "general-purpose", "cpu": 8, "memoryGiB": 32, "instanceType": "idc.cpu",
                "capacity": 100000, "pricePerHour": 0.05},
    },
}
for region, shapes in pools.items():
    for pool_id, pool in shapes.items():
        call("PUT", f"/v1/admin/regions/{region}/pools/{pool_id}", pool, {201})

tokens = {}
for name in ("tenant-a", "tenant-b"):
    tokens[name] = call("POST", "/v1/admin/tenants", {"name": name}, {201})["token"]

auth = {
    "schemaVersion": "0.1.0",
    "auth": [
        {"name": "tenant-a", "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {tokens['tenant-a']}"}]},
        {"name": "tenant-b", "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {tokens['tenant-b']}"}]},
        {"name": "admin", "fixedHeaders": [{"name": "Authorization", "value": admin["Authorization"]}]},
    ],
}
with open(os.path.join(work, "auth.json"), "w") as f:
    json.dump(auth, f)
with open(os.path.join(work, "tokens.json"), "w") as f:
    json.dump(tokens, f)
print(f"seed: 2 regions, {sum(map(len, pools.values()))} pools, 2 tenants")
