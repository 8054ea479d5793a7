"""Generates a Python client from the OpenAPI document with openapi-python-client
and checks that it has a function for every operation: the generator drops an
operation it cannot model (it did for four `default: {}` beside `allOf`) with no
more than a warning.

Usage: client_check.py <openapi.yaml> <work directory>
"""
import pathlib
import subprocess
import sys

import yaml
from openapi_python_client.strings import snake_case

document, work = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
spec = yaml.safe_load(document.read_text())
operations = sorted(
    operation["operationId"]
    for path in spec["paths"].values()
    for method, operation in path.items()
    if isinstance(operation, dict) and "operationId" in operation
)
generated = subprocess.run(
    ["openapi-python-client", "generate", "--path", str(document), "--output-path", str(work / "client"),
     "--overwrite", "--meta", "none"],
    capture_output=True, text=True)
if generated.returncode != 0:
    print(generated.stdout, generated.stderr, file=sys.stderr)
    sys.exit("client-check: openapi-python-client failed")


modules = {path.stem for path in (work / "client").rglob("api/**/*.py") if path.stem != "__init__"}
missing = [operation for operation in operations if snake_case(operation) not in modules]
if missing:
    print(generated.stdout, generated.stderr, file=sys.stderr)
    sys.exit(f"client-check: the generated client lacks {len(missing)} of {len(operations)} operations: {missing}")
print(f"client-check: the generated Python client has all {len(operations)} operations")
