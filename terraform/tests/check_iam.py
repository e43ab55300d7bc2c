"""IAM cross-check: every role Terraform creates grants exactly what its
principal calls, no more, no less.

    python check_iam.py STATE_JSON RECORDED_JSON REPO_ROOT

STATE_JSON is `terraform show -json` of the stack applied on moto;
RECORDED_JSON is what harness/tests/it/iam.rs recorded (DOFS_IAM_RECORD_OUT).

Function roles. The AWS actions each function's code can call are derived
from the Rust source, not listed by hand:
- aws/src/*.rs: every `impl <Port> for <Adapter>` and, per port method, the
  SDK operations it sends (`self.client.<operation>()`), following calls to
  its sibling methods (an insert that falls back to a get); the SDK crate
  (`use aws_sdk_<crate>::Client`) gives the IAM service;
- aws/src/lib.rs: which `AwsClients` factory builds which adapter;
- lambdas/<fn>/src/main.rs: which factories the bootstrap calls, with which
  configuration field (`aws.order_store(config.orders_table)`), and
  lambda/src/config.rs: which environment variable fills that field;
- lambdas/<fn>/src/*.rs (not main.rs, not tests): the port methods the
  handler calls on its `Arc<dyn Port>` fields (`self.orders.get(...)`); a
  field used any other way fails the check, since the calls behind it could
  not be followed.
Each (action, environment variable) pair becomes (action, ARN): the ARN
format of the action's resource type comes from the IAM Service
Authorization Reference as policy_sentry ships it, filled with the resource
named by the variable's value in the applied stack. To that come the calls
Lambda itself makes with the role, by what the function is configured with
(Lambda developer guide, "execution role"): its log group (CreateLogStream,
PutLogEvents), active tracing (PutTraceSegments, PutTelemetryRecords), its
KMS key (Decrypt, for the environment) and each SQS event source mapping
(ReceiveMessage, DeleteMessage, GetQueueAttributes, and Decrypt on the
queue's key). The role's inline policy must grant exactly that set of
(action, resource) pairs, and have no other policy.

The recording is the other half: every request a bootstrap really sent on
moto during the harness scenario, signed with that function's own access
key, must be one of the pairs derived from its code, so the derivation
cannot silently miss a call the code makes.

Workflow role. Derived from the rendered definition in the applied state:
each Task's integration (lambda:invoke -> lambda:InvokeFunction on the
FunctionName; sqs:sendMessage -> sqs:SendMessage on the queue, with
kms:GenerateDataKey and kms:Decrypt on an SSE-KMS queue's key), plus what
the state machine's configuration needs (Step Functions developer guide:
X-Ray for tracing, the vended-log delivery calls for logging). Exactly.

Exits non-zero listing every difference.
"""

import json
import os
import re
import sys
from fnmatch import fnmatchcase

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aws_requests  # noqa: E402

FUNCTIONS = ["api_handler", "validator", "order_storage", "fulfill_order", "dlq_handler"]
# aws-sdk-<crate> -> (botocore service, IAM prefix).
SDK_CRATES = {"dynamodb": ("dynamodb", "dynamodb"), "sfn": ("stepfunctions", "states"), "sqs": ("sqs", "sqs")}

problems = []


def problem(msg):
    problems.append(msg)


def read(*parts):
    with open(os.path.join(REPO, *parts), encoding="utf-8") as f:
        return f.read()


def squash(text):
    """Rust source without comments and whitespace, so a call chain that
    rustfmt spread over lines reads as `self.orders.get(`."""
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"\s+", "", text)


def blocks(text, header):
    """(match, body) of each top-level `header ... {` block (rustfmt layout:
    the block closes with a `}` at column 0)."""
    for m in re.finditer(header, text, re.M):
        end = text.find("\n}", m.end())
        yield m, text[m.end(): end if end >= 0 else len(text)]


def pascal(snake):
    return "".join(part.capitalize() for part in snake.split("_"))


# --- the code side ------------------------------------------------------------------


def port_traits():
    """The ports dofs-core declares (`pub trait X` in core/src/ports.rs)."""
    return set(re.findall(r"^pub trait (\w+)", read("core", "src", "ports.rs"), re.M))


def adapters():
    """{adapter: {"trait", "methods": {method: (IAM actions, sibling calls)}}}
    for every dofs-core port implemented in aws/src."""
    import botocore.session

    session = botocore.session.get_session()
    ports = port_traits()
    if not ports:
        problem("core/src/ports.rs: no port traits found")
    found = {}
    aws_src = os.path.join(REPO, "aws", "src")
    for name in sorted(os.listdir(aws_src)):
        if not name.endswith(".rs"):
            continue
        text = read("aws", "src", name)
        crates = set(re.findall(r"^use aws_sdk_(\w+)::Client;", text, re.M))
        for m, body in blocks(text, r"^impl (\w+) for (\w+) \{$"):
            trait, adapter = m.group(1), m.group(2)
            if trait not in ports:
                continue
            if len(crates) != 1:
                problem(f"aws/src/{name}: impl {trait} for {adapter}: expected one `use aws_sdk_<crate>::Client`, found {sorted(crates)}")
                continue
            crate = next(iter(crates))
            if crate not in SDK_CRATES:
                problem(f"aws/src/{name}: aws-sdk-{crate} is not in check_iam.py's SDK_CRATES")
                continue
            service, prefix = SDK_CRATES[crate]
            operations = {op.lower(): op for op in session.get_service_model(service).operation_names}
            methods = {}
            pieces = re.split(r"^    (?:pub )?(?:async )?fn (\w+)", body, flags=re.M)
            for method, code in zip(pieces[1::2], pieces[2::2]):
                flat = squash(code)
                ops = set()
                for op in re.findall(r"self\.client\.(\w+)\(\)", flat):
                    real = operations.get(pascal(op).lower())
                    if real is None:
                        problem(f"aws/src/{name}: {adapter}::{method} calls {op}(), which is not a {service} operation")
                        continue
                    ops.add(f"{prefix}:{real}")
                siblings = set(re.findall(r"self\.(\w+)\(", flat)) - {"client"}
                methods[method] = (ops, siblings)
            found[adapter] = {"trait": trait, "methods": methods}
    return found


def adapter_actions(adapter, method, seen=None):
    """The IAM actions `adapter.method` can need, through its sibling calls."""
    seen = seen or set()
    if method in seen:
        return set()
    seen.add(method)
    ops, siblings = adapter["methods"].get(method, (set(), set()))
    actions = set(ops)
    for sibling in siblings:
        if sibling in adapter["methods"]:
            actions |= adapter_actions(adapter, sibling, seen)
    return actions


def factories():
    """{AwsClients method: the adapter type it returns}."""
    text = read("aws", "src", "lib.rs")
    return dict(re.findall(r"pub fn (\w+)\(&self[^)]*\)\s*->\s*(\w+)\s*\{", text))


def config_fields():
    """{Config type: {field: environment variable}} from lambda/src/config.rs."""
    text = read("lambda", "src", "config.rs")
    constants = dict(re.findall(r'^pub const ([A-Z][A-Z0-9_]*): &str = "([^"]+)";', text, re.M))
    configs = {}
    for m, body in blocks(text, r"^impl (\w+Config) \{$"):
        fields = {}
        for field, constant in re.findall(r"let (\w+) = r\.\w+\(([A-Z][A-Z0-9_]*)\);", body):
            fields[field] = constants.get(constant, constant)
        configs[m.group(1)] = fields
    return configs


def derived_from_code():
    """{function: {(IAM action, environment variable naming the resource)}}."""
    impls = adapters()
    made_by = factories()
    configs = config_fields()
    derived = {}
    for fn in FUNCTIONS:
        pairs = set()
        main = squash(read("lambdas", fn, "src", "main.rs"))
        config_types = set(re.findall(r"(\w+Config)::from_env", main)) - {"TelemetryConfig"}
        if len(config_types) != 1:
            problem(f"lambdas/{fn}/src/main.rs: expected one *Config::from_env, found {sorted(config_types)}")
            derived[fn] = pairs
            continue
        fields = configs.get(config_types.pop(), {})
        # The port each wired adapter serves, and the variable naming its resource.
        wired = {}
        for factory, field in re.findall(r"aws\.(\w+)\(config\.(\w+)\)", main):
            adapter = made_by.get(factory)
            if adapter not in impls:
                problem(f"lambdas/{fn}/src/main.rs: aws.{factory}(...) builds {adapter}, which has no port impl in aws/src")
                continue
            trait = impls[adapter]["trait"]
            if trait in wired:
                problem(f"lambdas/{fn}/src/main.rs: two {trait} adapters; check_iam.py cannot tell their calls apart")
            if field not in fields:
                problem(f"lambdas/{fn}/src/main.rs: config.{field} is not read from the environment in lambda/src/config.rs")
                continue
            wired[trait] = (impls[adapter], fields[field])
        leftovers = re.findall(r"aws\.(\w+)\(", main)
        for factory in leftovers:
            if factory in made_by and made_by[factory] not in impls:
                problem(f"lambdas/{fn}/src/main.rs: uses a raw SDK client (aws.{factory}()); check_iam.py cannot follow it")
        # The handler's port fields and the methods it calls on them.
        src = os.path.join(REPO, "lambdas", fn, "src")
        handler = "".join(
            squash(read("lambdas", fn, "src", name))
            for name in sorted(os.listdir(src))
            if name.endswith(".rs") and name not in ("main.rs", "tests.rs")
        )
        ports = dict(re.findall(r"(\w+):Arc<dyn(\w+)>", handler))
        for field, trait in sorted(ports.items()):
            if trait not in wired:
                continue
            calls = re.findall(rf"self\.{field}\.(\w+)\(", handler)
            uses = len(re.findall(rf"self\.{field}\b", handler))
            if uses != len(calls):
                problem(f"lambdas/{fn}: self.{field} is used other than as self.{field}.<method>(...); check_iam.py cannot follow its calls")
            adapter, env = wired[trait]
            for method in set(calls):
                if method not in adapter["methods"]:
                    problem(f"lambdas/{fn}: self.{field}.{method}() is not a method of the {trait} adapter")
                for action in adapter_actions(adapter, method):
                    pairs.add((action, env))
        for trait in set(wired) - set(ports.values()):
            problem(f"lambdas/{fn}/src/main.rs wires a {trait} the handler has no field for")
        derived[fn] = pairs
    return derived


# --- the Terraform side ---------------------------------------------------------------


def state_resources(state):
    out = []

    def walk(module):
        out.extend(module.get("resources", []))
        for child in module.get("child_modules", []):
            walk(child)

    walk(state["values"]["root_module"])
    return out


def granted(policy):
    """{(action, resource)} of an inline policy document; problems for what a
    least-privilege grant must not hold."""
    doc = json.loads(policy) if isinstance(policy, str) else policy
    statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    pairs = set()
    for st in statements:
        if st.get("Effect") != "Allow" or "NotAction" in st or "NotResource" in st:
            problem(f"statement {st.get('Sid')}: only Allow with Action and Resource is expected")
            continue
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        for action in actions:
            if "*" in action:
                problem(f"statement {st.get('Sid')}: wildcard action {action}")
            for resource in resources:
                pairs.add((action, resource))
    return pairs


def arn_parts(arn):
    parts = arn.split(":", 5)
    return {"partition": parts[1], "service": parts[2], "region": parts[3], "account": parts[4], "resource": parts[5]}


def resource_arn(action, value, where):
    """The ARN `action` acts on for the resource named by `value` (a name or
    an ARN), from the Service Authorization Reference's ARN formats."""
    from policy_sentry.querying.actions import get_action_data

    prefix, name = action.split(":")
    entries = [e for e in get_action_data(prefix, name).get(prefix, []) if e["resource_arn_format"] != "*"]
    if not entries:
        return "*"
    fmt = entries[0]["resource_arn_format"]
    resource_name = re.split(r"[:/]", arn_parts(value)["resource"])[-1] if value.startswith("arn:") else value
    filled = fmt.replace("${Partition}", where["partition"]).replace("${Region}", where["region"]).replace("${Account}", where["account"])
    first = True

    def fill(m):
        nonlocal first
        if first:
            first = False
            return resource_name
        return "*"

    return re.sub(r"\$\{\w+\}", fill, filled)


def known_action(action):
    from policy_sentry.querying.actions import get_action_data

    prefix, name = action.split(":")
    return bool(get_action_data(prefix, name).get(prefix))


def compare(who, expected, grants):
    for action, resource in sorted(expected - grants):
        problem(f"{who}: needs {action} on {resource}, which its role does not grant")
    for action, resource in sorted(grants - expected):
        problem(f"{who}: its role grants {action} on {resource}, which it never needs")
    for action in sorted({a for a, _ in grants}):
        if not known_action(action):
            problem(f"{who}: {action} is not an IAM action (Service Authorization Reference)")


def check_functions(resources, derived):
    by_type = {}
    for r in resources:
        by_type.setdefault(r["type"], []).append(r)
    queues = {q["values"]["arn"]: q["values"] for q in by_type.get("aws_sqs_queue", [])}
    role_policies = by_type.get("aws_iam_role_policy", [])
    attachments = by_type.get("aws_iam_role_policy_attachment", [])
    for fn in FUNCTIONS:
        address = f'module.functions["{fn}"]'
        function = next((r["values"] for r in by_type.get("aws_lambda_function", []) if r["address"] == f"{address}.aws_lambda_function.this"), None)
        if function is None:
            problem(f"{fn}: no {address}.aws_lambda_function.this in the state")
            continue
        where = arn_parts(function["arn"])
        role_name = function["role"].split("/")[-1]
        env = (function.get("environment") or [{}])[0].get("variables") or {}
        expected = set()
        for action, variable in derived.get(fn, set()):
            if variable not in env:
                problem(f"{fn}: its code needs {action} on the resource in {variable}, which Terraform does not set")
                continue
            expected.add((action, resource_arn(action, env[variable], where)))
        # What Lambda does with the role, by the function's configuration.
        # Lambda's default group when logging_config names none (moto does
        # not report the setting back).
        log_group = (function.get("logging_config") or [{}])[0].get("log_group") or f"/aws/lambda/{function['function_name']}"
        if log_group:
            group_arn = f"arn:{where['partition']}:logs:{where['region']}:{where['account']}:log-group:{log_group}:*"
            expected |= {("logs:CreateLogStream", group_arn), ("logs:PutLogEvents", group_arn)}
        if (function.get("tracing_config") or [{}])[0].get("mode") == "Active":
            expected |= {("xray:PutTraceSegments", "*"), ("xray:PutTelemetryRecords", "*")}
        if function.get("kms_key_arn"):
            expected.add(("kms:Decrypt", function["kms_key_arn"]))
        for esm in by_type.get("aws_lambda_event_source_mapping", []):
            v = esm["values"]
            if v["function_arn"] != function["arn"] and v["function_name"] not in (function["arn"], function["function_name"]):
                continue
            queue = queues.get(v["event_source_arn"])
            if queue is None:
                problem(f"{fn}: event source {v['event_source_arn']} is not an SQS queue of the stack")
                continue
            expected |= {(a, queue["arn"]) for a in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")}
            if queue.get("kms_master_key_id"):
                expected.add(("kms:Decrypt", queue["kms_master_key_id"]))
        policies = [p for p in role_policies if p["values"]["role"] == role_name]
        if [p["address"] for p in policies] != [f"{address}.aws_iam_role_policy.this"]:
            problem(f"{fn}: expected exactly its module's inline policy on {role_name}, found {[p['address'] for p in policies]}")
        if any(a["values"]["role"] == role_name for a in attachments):
            problem(f"{fn}: {role_name} has managed policies attached")
        grants = set()
        for p in policies:
            grants |= granted(p["values"]["policy"])
        compare(fn, expected, grants)


WORKFLOW_TRACING = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"}
WORKFLOW_LOGGING = {
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
}


def check_workflow(resources):
    machines = [r["values"] for r in resources if r["type"] == "aws_sfn_state_machine"]
    queues = {r["values"]["url"]: r["values"] for r in resources if r["type"] == "aws_sqs_queue"}
    if len(machines) != 1:
        problem(f"expected one state machine, found {len(machines)}")
        return
    machine = machines[0]
    definition = json.loads(machine["definition"])
    expected = set()
    for name, state in definition["States"].items():
        if state.get("Type") != "Task":
            continue
        resource = state["Resource"]
        params = state.get("Parameters", {})
        if resource == "arn:aws:states:::lambda:invoke" or resource.startswith("arn:aws:lambda:"):
            target = params.get("FunctionName", resource)
            expected.add(("lambda:InvokeFunction", target))
        elif resource == "arn:aws:states:::sqs:sendMessage":
            queue = queues.get(params.get("QueueUrl"))
            if queue is None:
                problem(f"workflow {name}: sends to {params.get('QueueUrl')}, not a queue of the stack")
                continue
            expected.add(("sqs:SendMessage", queue["arn"]))
            if queue.get("kms_master_key_id"):
                expected |= {("kms:GenerateDataKey", queue["kms_master_key_id"]), ("kms:Decrypt", queue["kms_master_key_id"])}
        else:
            problem(f"workflow {name}: integration {resource} has no permission rule in check_iam.py")
    if (machine.get("tracing_configuration") or [{}])[0].get("enabled"):
        expected |= {(a, "*") for a in WORKFLOW_TRACING}
    if (machine.get("logging_configuration") or [{}])[0].get("level", "OFF") != "OFF":
        expected |= {(a, "*") for a in WORKFLOW_LOGGING}
    role_name = machine["role_arn"].split("/")[-1]
    policies = [r["values"] for r in resources if r["type"] == "aws_iam_role_policy" and r["values"]["role"] == role_name]
    if len(policies) != 1:
        problem(f"workflow: expected one inline policy on {role_name}, found {len(policies)}")
    if any(r["type"] == "aws_iam_role_policy_attachment" and r["values"]["role"] == role_name for r in resources):
        problem(f"workflow: {role_name} has managed policies attached")
    grants = set()
    for p in policies:
        grants |= granted(p["policy"])
    compare("workflow", expected, grants)


def check_recorded(recorded, derived):
    """Every call a bootstrap really made is one the code analysis found."""
    env = recorded["environment"]
    execution_prefix = env.get("STATE_MACHINE_ARN", "").replace(":stateMachine:", ":execution:") + ":"
    seen = {fn: set() for fn in FUNCTIONS}
    for request in recorded["requests"]:
        fn = recorded["principals"].get(request["access_key"])
        action = aws_requests.iam_action(request)
        if fn is None or action is None:
            problem(f"recorded request not understood: {request}")
            continue
        fields = request.get("fields", {})
        variables = {var for var, value in env.items() if value in fields.values()}
        if str(fields.get("executionArn", "")).startswith(execution_prefix):
            variables.add("STATE_MACHINE_ARN")
        if len(variables) != 1:
            problem(f"{fn}: recorded {action} on {fields}, which names no single resource of its environment")
            continue
        seen[fn].add((action, variables.pop()))
    for fn in FUNCTIONS:
        for action, variable in sorted(seen[fn] - derived.get(fn, set())):
            problem(f"{fn}: called {action} on ${variable} on moto, which the code analysis did not find (check_iam.py misses a call path)")
        unexercised = derived.get(fn, set()) - seen[fn]
        for action, variable in sorted(unexercised):
            print(f"note: {fn}: {action} on ${variable} is reachable in the code but was not called in the harness scenario")
    return seen


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        state = json.load(f)
    with open(sys.argv[2], encoding="utf-8") as f:
        recorded = json.load(f)
    derived = derived_from_code()
    for fn in FUNCTIONS:
        print(f"{fn}: code calls {sorted(f'{a} on ${v}' for a, v in derived.get(fn, set())) or 'nothing'}")
    resources = state_resources(state)
    check_functions(resources, derived)
    check_workflow(resources)
    check_recorded(recorded, derived)
    for p in problems:
        print(f"FAIL {p}")
    print(f"iam: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    REPO = sys.argv[3] if len(sys.argv) > 3 else "."
    sys.exit(main())
