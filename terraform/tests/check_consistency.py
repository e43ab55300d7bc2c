"""Consistency of the names DOFS spreads over Rust, Terraform and dashboards/.

    python check_consistency.py REPO_ROOT

Checks, without AWS or Terraform:
- every metric an alarm or the dashboard references is either an AWS service
  metric (with that service's dimensions) or a DOFS metric of
  dashboards/metrics.json (which dofs-telemetry compiles in), with the
  `function` dimension naming a function that emits it;
- every alarm definition is complete and its placeholders are declared and
  bound by Terraform; the alarms the design asks for are all there;
- the five function names agree between Terraform, the lambdas/ crates, the
  workspace members and metrics.json;
- per function, the environment Terraform gives it (functions.tf
  `function_environment.<fn>`) is exactly what its configuration reads: the
  `*Config::from_env` its bootstrap (lambdas/<fn>/src/main.rs) calls, in
  lambda/src/config.rs, reads every variable Terraform sets, and Terraform
  sets every variable it requires (an optional one, such as FAILURE_SEED,
  may be left unset); the variables the lambda_function module adds to
  every function are read by dofs-telemetry's configuration;
- the ASL placeholders are exactly what Terraform renders it with, and the
  queues and tables behind them are the ones the functions are given;
- each ASL state runs at most once (only Task, Choice, Pass, Succeed and
  Fail states, every Task with a TimeoutSeconds, no cycle), which the
  execution timeout workflow.tf derives from the tasks' retries assumes.
Exits non-zero listing every problem.
"""

import json
import os
import re
import sys

import hcl2

# AWS service metrics DOFS may reference, with the dimensions they carry
# (CloudWatch documentation of each service; HTTP APIs name them 4xx/5xx).
AWS_METRICS = {
    "AWS/Lambda": ({"Errors", "Invocations", "Duration", "Throttles", "ConcurrentExecutions", "IteratorAge"}, {"FunctionName"}),
    "AWS/SQS": (
        {
            "ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateAgeOfOldestMessage", "NumberOfMessagesSent", "NumberOfMessagesReceived",
            "NumberOfMessagesDeleted",
        },
        {"QueueName"},
    ),
    "AWS/ApiGateway": ({"Count", "4xx", "5xx", "Latency", "IntegrationLatency", "DataProcessed"}, {"ApiId", "Stage", "Route"}),
    "AWS/States": (
        {
            "ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut",
            "ExecutionsAborted", "ExecutionThrottled", "ExecutionTime",
        },
        {"StateMachineArn"},
    ),
}
# The failure modes on-call must be paged for (issue 13): each needs an alarm
# on the metric that shows it.
REQUIRED_ALARMS = {
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    ("AWS/SQS", "ApproximateNumberOfMessagesNotVisible"),
    ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
    ("AWS/Lambda", "Errors"),
    ("AWS/Lambda", "Invocations"),
    ("AWS/Lambda", "Throttles"),
    ("AWS/ApiGateway", "5xx"),
    ("AWS/States", "ExecutionsFailed"),
    ("AWS/States", "ExecutionsTimedOut"),
    ("AWS/States", "ExecutionsAborted"),
    ("DOFS", "FulfillmentFailures"),
    ("DOFS", "OrdersDeadLettered"),
    ("DOFS", "DeadLetterFailures"),
    ("DOFS", "RequestsInvalid"),
}
ALARM_FIELDS = {"name", "scope", "description", "period", "evaluation_periods", "threshold", "comparison", "treat_missing_data"}
COMPARISONS = {"GreaterThanThreshold", "GreaterThanOrEqualToThreshold", "LessThanThreshold", "LessThanOrEqualToThreshold"}
PLACEHOLDER = re.compile(r"^\$\{([a-z_]+)\}$")

problems = []


def problem(msg):
    problems.append(msg)


def load_json(*parts):
    with open(os.path.join(REPO, *parts), encoding="utf-8") as f:
        return json.load(f)


def load_hcl(*parts):
    with open(os.path.join(REPO, *parts), encoding="utf-8") as f:
        return hcl2.load(f)


def locals_of(doc):
    # python-hcl2 wraps every attribute value in a one-element list.
    merged = {}
    for block in doc.get("locals", []):
        for key, value in block.items():
            merged[key] = value[0] if isinstance(value, list) and len(value) == 1 else value
    return merged


def config_variables():
    """Per `*Config` type of lambda/src/config.rs, the variables its `from_env`
    reads, as (required, optional) sets of names.

    The file is rustfmt-formatted: `from_env` reads each variable with one
    `r.<reader>(CONSTANT)` call, and a reader is required when it goes
    through `Reader::required`."""
    with open(os.path.join(REPO, "lambda", "src", "config.rs"), encoding="utf-8") as f:
        text = f.read()
    constants = dict(re.findall(r'^pub const ([A-Z][A-Z0-9_]*): &str = "([^"]+)";', text, re.M))
    readers = {
        name: "self.required(variable" in body
        for name, body in re.findall(r"^    fn (\w+)\(&mut self, variable: &'static str\) [^{]*\{\n(.*?)^    \}$", text, re.M | re.S)
    }
    configs = {}
    for config, body in re.findall(r"^impl (\w+Config) \{\n(.*?)^\}$", text, re.M | re.S):
        from_env = re.search(r"^    pub fn from_env\(.*?^    \}$", body, re.M | re.S)
        if from_env is None:
            continue
        required, optional = set(), set()
        for reader, constant in re.findall(r"\br\.(\w+)\(([A-Z][A-Z0-9_]*)\)", from_env.group(0)):
            if reader not in readers or constant not in constants:
                problem(f"lambda/src/config.rs: {config}::from_env reads {constant} with {reader}, which this check cannot resolve")
                continue
            (required if readers[reader] else optional).add(constants[constant])
        configs[config] = (required, optional)
    if not configs:
        problem("lambda/src/config.rs: no *Config::from_env found")
    return configs


def function_config(fn):
    """The `*Config` type whose `from_env` lambdas/<fn>/src/main.rs calls."""
    with open(os.path.join(REPO, "lambdas", fn, "src", "main.rs"), encoding="utf-8") as f:
        called = set(re.findall(r"\b(\w+Config)::from_env\b", f.read())) - {"TelemetryConfig"}
    if len(called) != 1:
        problem(f"lambdas/{fn}/src/main.rs: expected one *Config::from_env call, found {sorted(called)}")
        return None
    return called.pop()


def check_metric(where, namespace, name, dims, catalog, functions):
    if namespace == catalog["namespace"]:
        entry = next((m for m in catalog["metrics"] if m["name"] == name), None)
        if entry is None:
            problem(f"{where}: DOFS metric {name} is not in dashboards/metrics.json")
            return
        if set(dims) != {catalog["dimension"]}:
            problem(f"{where}: DOFS metric {name} must have exactly the dimension {catalog['dimension']}, has {sorted(dims)}")
            return
        # Stack-scoped: the value must be a deployed function name, never a
        # crate name that every stack in the account shares.
        value = dims[catalog["dimension"]]
        scoped = re.match(r"^\$\{function_name(?:_([a-z_]+))?\}$", value)
        if not scoped:
            problem(f"{where}: DOFS metric {name} selects function {value!r}, not a deployed function name placeholder (not scoped to the stack)")
            return
        fn = scoped.group(1)
        if fn is None:
            if entry["function"] != "*":
                problem(f"{where}: {name} is emitted by {entry['function']} only; select it with function_name_{entry['function']}")
        elif entry["function"] == "*":
            if fn not in functions:
                problem(f"{where}: {name} for unknown function {fn}")
        elif fn != entry["function"]:
            problem(f"{where}: {name} is emitted by {entry['function']}, not {fn}")
    elif namespace in AWS_METRICS:
        names, allowed_dims = AWS_METRICS[namespace]
        if name not in names:
            problem(f"{where}: {namespace} has no metric {name}")
        if not dims or not set(dims) <= allowed_dims:
            problem(f"{where}: {namespace} {name} dimensions {sorted(dims)} not among {sorted(allowed_dims)}")
    else:
        problem(f"{where}: unknown namespace {namespace}")


def alarm_metrics(alarm):
    if "expression" in alarm:
        return [(f"alarm {alarm['name']}.{mid}", m) for mid, m in alarm.get("metrics", {}).items()]
    return [(f"alarm {alarm['name']}", alarm)]


def check_workflow_runs_each_state_once(asl):
    """workflow.tf bounds the execution by the sum of every task's worst case,
    which holds while each state runs at most once: the states are Task,
    Choice, Pass, Succeed or Fail (no Wait, Map or Parallel) and their
    transitions (Next, Default, Choices, Catch) form no cycle."""
    states = asl.get("States", {})
    for name, state in states.items():
        if state.get("Type") not in ("Task", "Choice", "Pass", "Succeed", "Fail"):
            problem(f"ASL state {name} is a {state.get('Type')}: workflow.tf's execution timeout bound covers Task, Choice, Pass, Succeed and Fail only")
        if state.get("Type") == "Task" and not isinstance(state.get("TimeoutSeconds"), int):
            problem(f"ASL task {name} has no TimeoutSeconds: its worst case (and the execution timeout workflow.tf derives) would be unbounded")

    def successors(state):
        out = [state.get("Next"), state.get("Default")]
        out += [c.get("Next") for c in state.get("Choices", [])]
        out += [c.get("Next") for c in state.get("Catch", [])]
        return [n for n in out if n]

    done, on_path = set(), []

    def visit(name):
        if name in on_path:
            problem(f"ASL states loop: {' -> '.join(on_path[on_path.index(name):] + [name])}; workflow.tf's execution timeout bound assumes each state runs once")
            return
        if name in done or name not in states:
            return
        on_path.append(name)
        for nxt in successors(states[name]):
            visit(nxt)
        on_path.pop()
        done.add(name)

    for name in states:
        visit(name)


def main():
    catalog = load_json("dashboards", "metrics.json")
    alarms = load_json("dashboards", "alarms.json")
    dashboard = load_json("dashboards", "dashboard.json")

    # --- function names -------------------------------------------------------
    tf_main = locals_of(load_hcl("terraform", "main.tf"))
    functions = list(tf_main["function_keys"])
    crates = sorted(d for d in os.listdir(os.path.join(REPO, "lambdas")) if os.path.isdir(os.path.join(REPO, "lambdas", d)))
    if sorted(functions) != crates:
        problem(f"Terraform functions {sorted(functions)} differ from lambdas/ crates {crates}")
    with open(os.path.join(REPO, "Cargo.toml"), encoding="utf-8") as f:
        members = set(re.findall(r'"lambdas/([a-z_]+)"', f.read()))
    if members != set(functions):
        problem(f"workspace members lambdas/* {sorted(members)} differ from Terraform functions")
    for crate in crates:
        with open(os.path.join(REPO, "lambdas", crate, "Cargo.toml"), encoding="utf-8") as f:
            if not re.search(rf'^name\s*=\s*"{crate}"', f.read(), re.M):
                problem(f"lambdas/{crate}/Cargo.toml: package is not named {crate}")
    for m in catalog["metrics"]:
        if m["function"] != "*" and m["function"] not in functions:
            problem(f"metrics.json: {m['name']} names unknown function {m['function']}")

    # --- environment variables: Terraform vs each function's configuration -------------
    configs = config_variables()
    tf_functions = locals_of(load_hcl("terraform", "functions.tf"))
    env_by_fn = tf_functions["function_environment"]
    if set(env_by_fn) != set(functions):
        problem(f"functions.tf environment covers {sorted(env_by_fn)}, not every function")
    for fn, env in env_by_fn.items():
        config = function_config(fn)
        if config is None:
            continue
        if config not in configs:
            problem(f"lambdas/{fn}/src/main.rs: {config} has no from_env in lambda/src/config.rs")
            continue
        required, optional = configs[config]
        for var in sorted(set(env) - required - optional):
            problem(f"{fn}: Terraform sets {var}, which {config}::from_env does not read")
        for var in sorted(required - set(env)):
            problem(f"{fn}: {config}::from_env requires {var}, which functions.tf does not set")
    with open(os.path.join(REPO, "terraform", "modules", "lambda_function", "main.tf"), encoding="utf-8") as f:
        module_env = set(re.findall(r"^\s+([A-Z][A-Z0-9_]+)\s+=", f.read(), re.M))
    with open(os.path.join(REPO, "telemetry", "src", "config.rs"), encoding="utf-8") as f:
        telemetry_config = f.read()
    for var in sorted(module_env):
        if f'"{var}"' not in telemetry_config:
            problem(f"modules/lambda_function sets {var} on every function, which dofs-telemetry's config does not read")

    # --- alarms ------------------------------------------------------------------
    declared = set(alarms.get("placeholders", {}))
    tf_obs = locals_of(load_hcl("terraform", "observability.tf"))
    bound = set(tf_obs["alarm_placeholders"]) | {"function_name"}
    if declared != bound:
        problem(f"alarms.json declares placeholders {sorted(declared)}, Terraform binds {sorted(bound)}")
    seen_names, referenced = set(), set()
    for alarm in alarms["alarms"]:
        missing = ALARM_FIELDS - set(alarm)
        if missing:
            problem(f"alarm {alarm.get('name')}: missing {sorted(missing)}")
            continue
        if alarm["name"] in seen_names:
            problem(f"alarm {alarm['name']} defined twice")
        seen_names.add(alarm["name"])
        if alarm["scope"] not in ("stack", "function"):
            problem(f"alarm {alarm['name']}: scope must be stack or function")
        if alarm["comparison"] not in COMPARISONS:
            problem(f"alarm {alarm['name']}: bad comparison {alarm['comparison']}")
        if alarm["period"] % 60:
            problem(f"alarm {alarm['name']}: period must be a multiple of 60")
        if ("expression" in alarm) != ("metrics" in alarm):
            problem(f"alarm {alarm['name']}: expression and metrics go together")
        if "expression" in alarm:
            ids = set(re.findall(r"\b[a-z][a-zA-Z0-9_]*\b", alarm["expression"])) - {"IF"}
            if not ids <= set(alarm["metrics"]):
                problem(f"alarm {alarm['name']}: expression uses {sorted(ids - set(alarm['metrics']))} not in metrics")
        for where, m in alarm_metrics(alarm):
            if not {"namespace", "metric_name", "statistic"} <= set(m):
                problem(f"{where}: needs namespace, metric_name and statistic")
                continue
            referenced.add((m["namespace"], m["metric_name"]))
            dims = m.get("dimensions", {})
            for value in dims.values():
                ph = PLACEHOLDER.match(value)
                if "${" in value and not ph:
                    problem(f"{where}: a placeholder must be the whole dimension value: {value}")
                if ph and ph.group(1) not in declared:
                    problem(f"{where}: undeclared placeholder {value}")
                if ph and ph.group(1) == "function_name" and alarm["scope"] != "function":
                    problem(f"{where}: function_name is only bound for scope function")
                if not ph:
                    problem(f"{where}: dimension value {value!r} is a literal; every alarm must select this stack's resources through a placeholder")
            check_metric(where, m["namespace"], m["metric_name"], dims, catalog, functions)
    # Every alarm sends on-call to its own runbook section.
    with open(os.path.join(REPO, "docs", "runbook.md"), encoding="utf-8") as f:
        runbook = f.read()
    anchors = set(re.findall(r'^#+ .*?<a id="([a-z0-9-]+)"></a>', runbook, re.M))
    for alarm in alarms["alarms"]:
        link = f"Runbook: docs/runbook.md#{alarm.get('name')}."
        if link not in alarm.get("description", ""):
            problem(f"alarm {alarm.get('name')}: the description does not say {link!r}")
        if alarm.get("name") not in anchors:
            problem(f"docs/runbook.md has no section for alarm {alarm.get('name')}")
    for need in sorted(REQUIRED_ALARMS - referenced):
        problem(f"no alarm watches {need[0]} {need[1]}")

    # --- dashboard ------------------------------------------------------------------
    dash_placeholders = {"region", "api_id", "state_machine_arn", "order_queue_name", "dead_letter_queue_name"} | {
        f"function_name_{fn}" for fn in functions
    }
    for placeholder in set(re.findall(r"\$\{([a-z_]+)\}", json.dumps(dashboard))):
        if placeholder not in dash_placeholders:
            problem(f"dashboard.json: unknown placeholder {placeholder}")
    for widget in dashboard["widgets"]:
        for metric in widget.get("properties", {}).get("metrics", []):
            parts = [p for p in metric if not isinstance(p, dict)]
            if len(parts) < 2 or "." in parts:
                problem(f"dashboard widget {widget['properties'].get('title')}: unreadable metric {metric}")
                continue
            dims = dict(zip(parts[2::2], parts[3::2]))
            for key, value in dims.items():
                m = re.match(r"^\$\{function_name_([a-z_]+)\}$", value)
                if key == "FunctionName" and not m:
                    problem(f"dashboard: FunctionName {value} is not a function_name_<fn> placeholder")
            check_metric(f"dashboard {widget['properties'].get('title')}", parts[0], parts[1], dims, catalog, functions)

    # --- workflow --------------------------------------------------------------------
    with open(os.path.join(REPO, "terraform", "order_workflow.asl.json"), encoding="utf-8") as f:
        asl_text = f.read()
    asl_placeholders = set(re.findall(r"\$\{([a-z_]+)\}", asl_text))
    check_workflow_runs_each_state_once(json.loads(asl_text))
    with open(os.path.join(REPO, "terraform", "workflow.tf"), encoding="utf-8") as f:
        workflow_tf = f.read()
    rendered = dict(re.findall(r"^\s+([a-z_]+)\s+=\s+(module\.[^\s]+)$", workflow_tf, re.M))
    if set(rendered) != asl_placeholders:
        problem(f"ASL placeholders {sorted(asl_placeholders)} differ from the templatefile map {sorted(rendered)}")
    wanted = {
        "validator_function_arn": 'module.functions["validator"].arn',
        "order_storage_function_arn": 'module.functions["order_storage"].arn',
        "order_queue_url": "module.order_queue.queue_url",
        "dead_letter_queue_url": "module.order_queue.dlq_url",
    }
    for key, expr in wanted.items():
        if rendered.get(key) != expr:
            problem(f"workflow.tf: {key} should be {expr}, is {rendered.get(key)}")
    env_text = json.dumps(env_by_fn)
    for needle in ("module.orders_table.name", "module.failed_orders_table.name", "local.state_machine_arn"):
        if needle not in env_text:
            problem(f"functions.tf: no function is given {needle}")

    for p in problems:
        print(f"FAIL {p}")
    print(f"consistency: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    REPO = sys.argv[1] if len(sys.argv) > 1 else "."
    sys.exit(main())
