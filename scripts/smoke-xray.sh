#!/usr/bin/env bash
# Post-deploy smoke check: one order is one X-Ray trace, in the real X-Ray.
#
#   scripts/smoke-xray.sh [terraform/outputs.json]
#
# What no local test can prove (how X-Ray assembles the documents the
# functions send with Lambda's and Step Functions' own segments), checked on
# the deployed stack with the AWS CLI:
#  1. POST /orders to the deployed API (`api_url` output): 202 with a
#     trace_id (order_trace_sample_rate must be 1 for the smoke order);
#  2. GET /orders/{id} until FULFILLED or FAILED;
#  3. `aws xray get-trace-summaries` with the filter
#     `annotation.order_id = "<id>"`: exactly one trace, the 202's;
#  4. `aws xray batch-get-traces` of it: a segment of every function the
#     journey passed through, named as deployed (`function_names` output) —
#     api_handler, validator, order_storage, fulfill_order, and dlq_handler
#     when the order was dead-lettered — every segment the functions sent
#     (origin AWS::Lambda::Function, annotation order_id) with a parent
#     that resolves inside the trace.
# X-Ray indexes traces with a delay; steps 3-4 are retried for
# SMOKE_XRAY_TIMEOUT seconds (300). SMOKE_XRAY_REQUIRE_DLQ=1 keeps
# submitting orders (up to SMOKE_XRAY_MAX_ORDERS, 60) until one is
# dead-lettered, so that one trace holds all five functions; that needs a
# stack with simulated failures (failure_rate > 0, the dev default). The
# pipeline's Apply stage sets it when the `simulated_failure_rate` output is
# above 0 — dev, which is checked for five functions; staging and prod
# (failure rate 0: no order is ever dead-lettered) are checked for four
# (api_handler, validator, order_storage, fulfill_order).
#
# An API behind jwt_authorizer needs SMOKE_XRAY_AUTHORIZATION, the
# Authorization header value ("Bearer <token>"; the pipeline reads it from
# the Secrets Manager secret smoke_authorization_secret_arn). A 202 without
# trace_id (the order was not sampled, order_trace_sample_rate < 1) is
# followed by another order, up to SMOKE_XRAY_MAX_UNSAMPLED (20).
# The smoke orders are real orders of the stack, named "X-Ray smoke check".
#
# It asks Step Functions nothing (no describe-execution, no
# get-execution-history): the order's status comes from the API and its
# journey from X-Ray, so it checks a STANDARD and an EXPRESS workflow
# (`workflow_type` output) alike; Express executions cannot be described.
#
# Needs: python3, the AWS CLI v2 (`aws`, or $AWS_CLI) and credentials
# allowed xray:GetTraceSummaries and xray:BatchGetTraces (the pipeline's
# deploy role). Exits non-zero naming what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

outputs="${1:-terraform/outputs.json}"
if [ ! -f "$outputs" ]; then
  echo "smoke-xray: no Terraform outputs at $outputs (terraform output -json >$outputs)" >&2
  exit 2
fi

exec python3 - "$outputs" <<'PY'
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

outputs = json.load(open(sys.argv[1], encoding="utf-8"))
api_url = outputs["api_url"]["value"].rstrip("/")
functions = outputs["function_names"]["value"]
timeout = int(os.environ.get("SMOKE_XRAY_TIMEOUT", "300"))
require_dlq = os.environ.get("SMOKE_XRAY_REQUIRE_DLQ") == "1"
max_orders = int(os.environ.get("SMOKE_XRAY_MAX_ORDERS", "60")) if require_dlq else 1
max_unsampled = int(os.environ.get("SMOKE_XRAY_MAX_UNSAMPLED", "20"))
authorization = os.environ.get("SMOKE_XRAY_AUTHORIZATION")
LAMBDA_ORIGIN = "AWS::Lambda::Function"


def fail(message):
    print(f"smoke-xray: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def http(method, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(api_url + path, data=data, method=method)
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    if authorization:
        request.add_header("authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        if err.code == 401:
            fail(f"{method} {path} answered 401: the API has a JWT authorizer; set "
                 "SMOKE_XRAY_AUTHORIZATION (\"Bearer <token>\"; in the pipeline: smoke_authorization_secret_arn)")
        return err.code, json.loads(err.read() or b"null")


AWS_CLI = os.environ.get("AWS_CLI", "aws")


def aws(*args):
    result = subprocess.run([AWS_CLI, *args, "--output", "json"], capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"aws {' '.join(args[:2])}: {result.stderr.strip()}")
    return json.loads(result.stdout or "null")


def submit():
    """A sampled order: (order_id, trace_id)."""
    body = {
        "customer_name": "X-Ray smoke check",
        "items": [{"sku": "SMOKE-1", "quantity": 1, "unit_price": "1.00"}],
    }
    for _ in range(max_unsampled + 1):
        key = f"smoke-xray-{uuid.uuid4()}"
        status, reply = http("POST", "/orders", body,
                             {"content-type": "application/json", "idempotency-key": key})
        if status != 202:
            fail(f"POST /orders answered {status}: {reply}")
        if reply.get("trace_id"):
            return reply["order_id"], reply["trace_id"]
        print(f"smoke-xray: order {reply.get('order_id')} was not sampled (no trace_id); another")
    fail(f"{max_unsampled + 1} orders in a row were not sampled: is order_trace_sample_rate 0?")


def terminal(order_id):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, order = http("GET", f"/orders/{order_id}")
        if status == 200 and order.get("status") in ("FULFILLED", "FAILED", "REJECTED"):
            return order["status"]
        time.sleep(3)
    fail(f"order {order_id} did not reach a terminal status in {timeout}s")


started = int(time.time()) - 60
for attempt in range(1, max_orders + 1):
    order_id, trace_id = submit()
    status = terminal(order_id)
    print(f"smoke-xray: order {order_id} (trace {trace_id}) ended {status}")
    if status == "REJECTED":
        fail("the smoke order was rejected by the validator")
    if status == "FAILED" or not require_dlq:
        break
else:
    fail(f"no order of {max_orders} was dead-lettered (is failure_rate 0 on this stack?)")

expected = ["api_handler", "validator", "order_storage", "fulfill_order"]
if status == "FAILED":
    expected.append("dlq_handler")
expected_names = {functions[f]: f for f in expected}


def documents(trace):
    """Every segment and subsegment of the trace, with its parent."""
    out = []

    def walk(doc, parent, top):
        out.append((doc, parent, top))
        for child in doc.get("subsegments", []):
            walk(child, doc["id"], False)

    for segment in trace["Segments"]:
        doc = json.loads(segment["Document"])
        walk(doc, doc.get("parent_id"), True)
    return out


problems = ["nothing checked yet"]
deadline = time.time() + timeout
while time.time() < deadline:
    summaries = aws("xray", "get-trace-summaries",
                    "--start-time", str(started), "--end-time", str(int(time.time()) + 60),
                    "--filter-expression", f'annotation.order_id = "{order_id}"')
    ids = sorted({s["Id"] for s in summaries.get("TraceSummaries", [])})
    problems = []
    if ids != [trace_id]:
        problems.append(f"annotation.order_id = {order_id} finds traces {ids}, expected exactly [{trace_id}]")
    else:
        traces = aws("xray", "batch-get-traces", "--trace-ids", trace_id)["Traces"]
        docs = documents(traces[0]) if traces else []
        known = {doc["id"] for doc, _, _ in docs}
        names = {doc.get("name") for doc, _, top in docs if top}
        missing = [f"{fn} ({name})" for name, fn in expected_names.items() if name not in names]
        if missing:
            problems.append(f"no segment of {missing} in trace {trace_id} (segments: {sorted(names)})")
        ours = [doc for doc, _, top in docs
                if top and doc.get("origin") == LAMBDA_ORIGIN
                and doc.get("annotations", {}).get("order_id") == order_id]
        ours_names = {doc["name"] for doc in ours}
        for name, fn in expected_names.items():
            if name not in ours_names:
                problems.append(f"{fn}: no segment of ours ({LAMBDA_ORIGIN}, annotation order_id)")
        for doc in ours:
            parent = doc.get("parent_id")
            if parent is not None and parent not in known:
                problems.append(f"{doc['name']} segment {doc['id']}: parent {parent} is not in the trace")
        roots = [doc for doc, parent, top in docs if top and parent is None and not doc.get("inferred")]
        if len(roots) != 1:
            problems.append(f"trace {trace_id} has {len(roots)} roots: {[d.get('name') for d in roots]}")
    if not problems:
        print(f"smoke-xray: OK: trace {trace_id} holds {', '.join(expected)} as one tree")
        sys.exit(0)
    time.sleep(10)
fail("; ".join(problems))
PY
