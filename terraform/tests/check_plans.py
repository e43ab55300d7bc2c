"""The dev and prod plans scripts/terraform-test.sh made from the committed
envs/<env>.tfvars, each initialised with envs/<env>.s3.tfbackend against
moto's S3, as the pipeline's plan stage does.

    python check_plans.py MOTO_ENDPOINT WORK_DIR REPO_ROOT

WORK_DIR holds plan-<env>.json (`terraform show -json` of the plan) and
backend-<env>.json (the backend configuration `terraform init` recorded).
Checks:
- each environment's state key is the one its envs/<env>.s3.tfbackend
  names, `<name_prefix>/<environment>.tfstate`; dev's and prod's differ,
  and each plan took its lock on its own key in the state bucket;
- every resource name carries its stack (<name_prefix>-<environment>), so
  the two stacks cannot touch each other's resources;
- prod: tables with deletion protection, a JWT authorizer on every route,
  at least one on-call subscription, no simulated failures;
- dev: the simulated failures envs/dev.tfvars asks for;
- both: Lambda's application-log filter never above INFO, per-route
  throttling on the stage, the packages' architecture arm64.
Exits non-zero listing every problem.
"""

import json
import os
import re
import sys

import boto3
import hcl2

problems = []


def problem(msg):
    problems.append(msg)


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def hcl_file(path):
    with open(path, encoding="utf-8") as f:
        doc = hcl2.load(f)
    return {k: (v[0] if isinstance(v, list) and len(v) == 1 and not isinstance(v[0], (dict, list)) else v) for k, v in doc.items()}


def planned(plan):
    """Every planned resource (child modules included) as {address: values}."""
    out = {}

    def walk(module):
        for r in module.get("resources", []):
            out[r["address"]] = (r["type"], r.get("values", {}))
        for child in module.get("child_modules", []):
            walk(child)

    walk(plan["planned_values"]["root_module"])
    return out


def of_type(resources, kind):
    return [values for address, (t, values) in sorted(resources.items()) if t == kind]


def check_backend(env, work, repo, name_prefix):
    backend = load_json(os.path.join(work, f"backend-{env}.json"))["backend"]
    key = backend["config"]["key"]
    committed = hcl_file(os.path.join(repo, "terraform", "envs", f"{env}.s3.tfbackend"))
    if backend["type"] != "s3":
        problem(f"{env}: initialised with a {backend['type']} backend, not s3")
    if key != committed.get("key"):
        problem(f"{env}: terraform init used key {key}, envs/{env}.s3.tfbackend says {committed.get('key')}")
    if key != f"{name_prefix}/{env}.tfstate":
        problem(f"{env}: state key {key} is not <name_prefix>/<environment>.tfstate ({name_prefix}/{env}.tfstate)")
    for setting in ("use_lockfile", "encrypt"):
        if backend["config"].get(setting) is not True:
            problem(f"{env}: backend {setting} is not true")
    return key


def check_stack_names(env, resources, stack):
    named = {
        "aws_lambda_function": "function_name", "aws_dynamodb_table": "name", "aws_sqs_queue": "name",
        "aws_sfn_state_machine": "name", "aws_iam_role": "name", "aws_sns_topic": "name",
        "aws_apigatewayv2_api": "name", "aws_cloudwatch_dashboard": "dashboard_name",
        "aws_cloudwatch_metric_alarm": "alarm_name", "aws_kms_alias": "name",
    }
    for address, (kind, values) in resources.items():
        field = named.get(kind)
        if field and stack not in str(values.get(field)):
            problem(f"{env}: {address} is named {values.get(field)}, without its stack {stack}")
    for group in of_type(resources, "aws_cloudwatch_log_group"):
        if stack not in group["name"]:
            problem(f"{env}: log group {group['name']} is outside its stack {stack}")


def check_common(env, resources):
    functions = of_type(resources, "aws_lambda_function")
    if len(functions) != 5:
        problem(f"{env}: {len(functions)} functions planned, not 5")
    for fn in functions:
        level = fn["logging_config"][0]["application_log_level"]
        if level not in ("TRACE", "DEBUG", "INFO"):
            problem(f"{env}: {fn['function_name']} filters application logs at {level}, which drops EMF metric lines")
        if fn["architectures"] != ["arm64"]:
            problem(f"{env}: {fn['function_name']} is not arm64")
    stages = of_type(resources, "aws_apigatewayv2_stage")
    routes = {s["route_key"] for stage in stages for s in stage.get("route_settings", [])}
    if routes != {"POST /orders", "GET /orders/{order_id}", "$default"}:
        problem(f"{env}: per-route throttling covers {sorted(routes)}, not every route")
    for stage in stages:
        if stage["default_route_settings"][0].get("detailed_metrics_enabled"):
            problem(f"{env}: detailed (billed, unused) route metrics are on")
    for esm in of_type(resources, "aws_lambda_event_source_mapping"):
        if not esm.get("scaling_config") or not esm["scaling_config"][0].get("maximum_concurrency"):
            problem(f"{env}: an SQS event source mapping has no maximum_concurrency")


def check_alarms_scoped(env, resources, stack):
    """Every alarm watches this stack's own series: a DOFS custom metric by the
    deployed function name (which carries the stack), never a crate name every
    stack in the account shares."""
    alarms = of_type(resources, "aws_cloudwatch_metric_alarm")
    if not alarms:
        problem(f"{env}: no alarms planned")
    for alarm in alarms:
        metrics = [alarm] if alarm.get("namespace") else [
            q["metric"][0] for q in alarm.get("metric_query", []) if q.get("metric")
        ]
        for m in metrics:
            if m.get("namespace") != "DOFS":
                continue
            value = (m.get("dimensions") or {}).get("function", "")
            if not value.startswith(f"{stack}-"):
                problem(f"{env}: alarm {alarm['alarm_name']} watches DOFS {m.get('metric_name')} for function {value!r}, not one of {stack}'s functions")


def failure_rate(resources):
    for fn in of_type(resources, "aws_lambda_function"):
        if fn["function_name"].endswith("-fulfill_order"):
            return fn["environment"][0]["variables"].get("FAILURE_RATE")
    return None


def check_prod(resources, tfvars):
    tables = of_type(resources, "aws_dynamodb_table")
    if len(tables) != 2 or not all(t["deletion_protection_enabled"] for t in tables):
        problem(f"prod: tables without deletion protection: {[t['name'] for t in tables if not t['deletion_protection_enabled']]}")
    authorizers = of_type(resources, "aws_apigatewayv2_authorizer")
    if len(authorizers) != 1 or authorizers[0]["authorizer_type"] != "JWT":
        problem(f"prod: expected one JWT authorizer, planned {len(authorizers)}")
    else:
        jwt = authorizers[0]["jwt_configuration"][0]
        want = tfvars["jwt_authorizer"]
        want = want[0] if isinstance(want, list) else want
        if jwt["issuer"] != want["issuer"] or jwt["audience"] != want["audience"]:
            problem(f"prod: authorizer {jwt} is not envs/prod.tfvars' {want}")
    routes = of_type(resources, "aws_apigatewayv2_route")
    open_routes = [r["route_key"] for r in routes if r["authorization_type"] != "JWT"]
    if len(routes) != 3 or open_routes:
        problem(f"prod: routes without the JWT authorizer: {open_routes} (of {len(routes)})")
    subscriptions = of_type(resources, "aws_sns_topic_subscription")
    if not subscriptions:
        problem("prod: the on-call topic has no subscriber")
    rate = failure_rate(resources)
    if rate is None or float(rate) != 0:
        problem(f"prod: fulfill_order's FAILURE_RATE is {rate}, not 0")


def check_dev(resources, tfvars):
    rate = failure_rate(resources)
    if rate is None or float(rate) != float(tfvars.get("failure_rate", 0.3)):
        problem(f"dev: FAILURE_RATE {rate}, envs/dev.tfvars asks for {tfvars.get('failure_rate')}")
    if any(t["deletion_protection_enabled"] for t in of_type(resources, "aws_dynamodb_table")):
        problem("dev: tables are deletion-protected although envs/dev.tfvars says not")


def check_locks(endpoint, keys):
    """Each plan locked its own key: the lock objects it created and removed
    remain as versions in the (versioned) state bucket."""
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="harness", aws_secret_access_key="testing")
    listed = s3.list_object_versions(Bucket="dofs-test-state")
    seen = {v["Key"] for v in listed.get("Versions", []) + listed.get("DeleteMarkers", [])}
    for key in keys:
        if f"{key}.tflock" not in seen:
            problem(f"no lock was taken on {key}.tflock in the state bucket (objects: {sorted(seen)})")


def main():
    endpoint, work, repo = sys.argv[1:4]
    keys = {}
    for env in ("dev", "prod"):
        tfvars = hcl_file(os.path.join(repo, "terraform", "envs", f"{env}.tfvars"))
        if tfvars.get("environment") != env:
            problem(f"envs/{env}.tfvars sets environment = {tfvars.get('environment')}")
        name_prefix = tfvars.get("name_prefix", "dofs")
        keys[env] = check_backend(env, work, repo, name_prefix)
        plan = load_json(os.path.join(work, f"plan-{env}.json"))
        changes = {a for rc in plan["resource_changes"] for a in rc["change"]["actions"]}
        if changes - {"create", "no-op", "read"}:
            problem(f"{env}: a first plan should only create, has {sorted(changes)}")
        resources = planned(plan)
        check_stack_names(env, resources, f"{name_prefix}-{env}")
        check_common(env, resources)
        check_alarms_scoped(env, resources, f"{name_prefix}-{env}")
        (check_prod if env == "prod" else check_dev)(resources, tfvars)
        print(f"{env}: state key {keys[env]}, {len(resources)} resources planned, FAILURE_RATE={failure_rate(resources)}")
    if keys["dev"] == keys["prod"]:
        problem(f"dev and prod share the state key {keys['dev']}")
    check_locks(endpoint, keys.values())
    for p in problems:
        print(f"FAIL {p}")
    print(f"plans: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
