"""schemathesis hooks of scripts/contract-test (loaded through SCHEMATHESIS_HOOKS).

The same Idempotency-Key with another body is rightly 422 `idempotency_key_reused`
(the broker keeps keys per tenant for 24 hours), and generated keys repeat across
generated bodies ("0", "deploy-42"), so positive_data_acceptance would flag a
schema-valid request for the server's memory of an earlier one. Each valid key is
made to stand for one body: the body's digest is appended, so a repeated body keeps
its key (the idempotent replay is still exercised) and another body gets another
key. The reuse rule itself is tested by the Swift suites."""
import hashlib
import json
import re

import schemathesis

_VALID = re.compile(r"^[\x20-\x7E]{1,200}$")


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.method.upper() != "POST" or case.path != "/v1/allocations" or not case.headers:
        return
    key = case.headers.get("Idempotency-Key")
    if not isinstance(key, str) or not _VALID.match(key):
        return
    body = json.dumps(case.body, sort_keys=True, default=str).encode()
    case.headers["Idempotency-Key"] = f"{key}-{hashlib.sha256(body).hexdigest()[:16]}"
