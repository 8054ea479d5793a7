#!/usr/bin/env python3
"""Checks JSON bodies against schemas of openapi/openapi.yaml (JSON Schema 2020-12,
as OpenAPI 3.1 defines them), with the `jsonschema` package of scripts/test-venv.

Usage: openapi-shapes.py OPENAPI_YAML BODIES_JSONL
Each line of BODIES_JSONL is {"schema": "<components/schemas name>", "body": <the JSON>, "what": "..."}.
Prints one line per body that does not match and exits 1 if any did not."""
import json
import sys

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

with open(sys.argv[1], encoding="utf-8") as f:
    document = yaml.safe_load(f)
base = "urn:gpubroker:openapi"
registry = Registry().with_resource(base, DRAFT202012.create_resource(document))
failures = 0
checked = 0
for line in open(sys.argv[2], encoding="utf-8"):
    if not line.strip():
        continue
    item = json.loads(line)
    name = item["schema"]
    if name not in document["components"]["schemas"]:
        print(f"{item.get('what', name)}: no schema {name} in the document")
        failures += 1
        continue
    validator = Draft202012Validator({"$ref": f"{base}#/components/schemas/{name}"}, registry=registry)
    errors = sorted(validator.iter_errors(item["body"]), key=lambda e: list(e.path))
    checked += 1
    for error in errors:
        path = "/".join(str(p) for p in error.absolute_path)
        print(f"{item.get('what', name)} ({name}) at '{path}': {error.message}")
    failures += bool(errors)
print(f"{checked} bodies checked, {failures} not matching their schema")
sys.exit(1 if failures else 0)
