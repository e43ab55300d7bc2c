"""Assertions on the DOFS stack Terraform created on moto, read back through boto3.

Run by scripts/terraform-test.sh after `terraform apply`:
    python assert_stack.py ENDPOINT_URL OUTPUTS_JSON REPO_ROOT [WORKFLOW_TYPE]
OUTPUTS_JSON is `terraform output -json`; WORKFLOW_TYPE (STANDARD, the
default, or EXPRESS) is the workflow_type the stack was applied with, given by
the test, not read from the stack. Expectations come from the shared
data (dashboards/*.json, the ASL file, tests/moto.tfvars), never from the
Terraform code under test. Which actions each role grants is check_iam.py's
job (derived from the code and the ASL); here only the shape of the grants
(no wildcard actions, "*" only where AWS requires it).
"""

import json
import math
import os
import re
import sys
import unittest

import boto3

ENDPOINT, OUTPUTS_FILE, REPO = sys.argv[1:4] if len(sys.argv) >= 4 else (None, None, None)
WORKFLOW_TYPE = sys.argv[4] if len(sys.argv) >= 5 else "STANDARD"
# An Express execution lasts 5 minutes at most (Step Functions developer
# guide, "Choosing workflow type").
EXPRESS_MAX_SECONDS = 300
FUNCTIONS = ["api_handler", "validator", "order_storage", "fulfill_order", "dlq_handler"]

# The only actions AWS accepts solely on Resource "*".
STAR_RESOURCE_ACTIONS = {
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
}


def client(service):
    # Its own access key, so the request log tells these reads from
    # Terraform's calls (check_deploy_policy.py checks only Terraform's).
    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="assertions",
        aws_secret_access_key="testing",
    )


def as_list(value):
    return value if isinstance(value, list) else [value]


def statements(document):
    doc = json.loads(document) if isinstance(document, str) else document
    return as_list(doc["Statement"])


def task_worst_case_seconds(state):
    """How long a Task can take with all its retries, by the ASL's rules:
    every attempt (the first, then each retrier's MaxAttempts, counted per
    retrier) runs to the task's TimeoutSeconds, every backoff waits
    IntervalSeconds * BackoffRate^n at most (MaxDelaySeconds caps it; FULL
    jitter only shortens it). Defaults: 3 attempts, 1 s, rate 2.0."""
    attempts, waits = 1, 0.0
    for retrier in state.get("Retry", []):
        retries = retrier.get("MaxAttempts", 3)
        attempts += retries
        for n in range(retries):
            wait = retrier.get("IntervalSeconds", 1) * retrier.get("BackoffRate", 2.0) ** n
            waits += min(wait, retrier.get("MaxDelaySeconds", wait))
    return attempts * state["TimeoutSeconds"] + waits


class StackTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(OUTPUTS_FILE, encoding="utf-8") as f:
            cls.out = {k: v["value"] for k, v in json.load(f).items()}
        with open(os.path.join(REPO, "dashboards", "alarms.json"), encoding="utf-8") as f:
            cls.alarm_catalog = json.load(f)
        with open(os.path.join(REPO, "dashboards", "metrics.json"), encoding="utf-8") as f:
            cls.metric_catalog = json.load(f)
        cls.lam = client("lambda")
        cls.sqs = client("sqs")
        cls.iam = client("iam")
        cls.cw = client("cloudwatch")
        cls.logs = client("logs")
        cls.sfn = client("stepfunctions")
        cls.ddb = client("dynamodb")
        cls.sns = client("sns")
        cls.apigw = client("apigatewayv2")
        cls.fn_names = cls.out["function_names"]
        cls.order_queue = cls.out["order_queue_url"]
        cls.dlq = cls.out["dead_letter_queue_url"]

    def queue_attrs(self, url):
        return self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]

    def function_config(self, fn):
        return self.lam.get_function_configuration(FunctionName=self.fn_names[fn])

    # --- queues and event source mappings ------------------------------------

    def test_order_queue_redrives_to_dlq_after_three_receives(self):
        attrs = self.queue_attrs(self.order_queue)
        redrive = json.loads(attrs["RedrivePolicy"])
        self.assertEqual(int(redrive["maxReceiveCount"]), 3)
        self.assertEqual(redrive["deadLetterTargetArn"], self.queue_attrs(self.dlq)["QueueArn"])

    def test_dlq_accepts_redrives_only_from_the_order_queue(self):
        allow = json.loads(self.queue_attrs(self.dlq)["RedriveAllowPolicy"])
        self.assertEqual(allow["redrivePermission"], "byQueue")
        self.assertEqual(allow["sourceQueueArns"], [self.queue_attrs(self.order_queue)["QueueArn"]])

    def test_visibility_timeouts_are_six_times_the_consumers_timeout(self):
        for url, fn in [(self.order_queue, "fulfill_order"), (self.dlq, "dlq_handler")]:
            timeout = self.function_config(fn)["Timeout"]
            self.assertGreaterEqual(int(self.queue_attrs(url)["VisibilityTimeout"]), 6 * timeout, url)

    def test_queues_are_encrypted_and_dlq_keeps_messages_14_days(self):
        for url in (self.order_queue, self.dlq):
            self.assertEqual(self.queue_attrs(url).get("KmsMasterKeyId"), self.out["kms_key_arn"], url)
        self.assertEqual(int(self.queue_attrs(self.dlq)["MessageRetentionPeriod"]), 14 * 24 * 3600)

    def test_event_source_mappings_report_batch_item_failures(self):
        for fn, url in [("fulfill_order", self.order_queue), ("dlq_handler", self.dlq)]:
            # moto ignores the FunctionName filter, so filter here.
            arn = self.function_config(fn)["FunctionArn"]
            mappings = [
                m for m in self.lam.list_event_source_mappings()["EventSourceMappings"] if m["FunctionArn"] == arn
            ]
            self.assertEqual(len(mappings), 1, fn)
            self.assertEqual(mappings[0]["EventSourceArn"], self.queue_attrs(url)["QueueArn"], fn)
            self.assertEqual(mappings[0]["FunctionResponseTypes"], ["ReportBatchItemFailures"], fn)
            self.assertEqual(mappings[0].get("ScalingConfig", {}).get("MaximumConcurrency"), 5, fn)

    # --- functions ------------------------------------------------------------

    def test_functions_are_arm64_al2023_traced_with_their_environment(self):
        expected_env = {
            "api_handler": {"ORDERS_TABLE": self.out["orders_table_name"], "STATE_MACHINE_ARN": self.out["state_machine_arn"]},
            "validator": {},
            "order_storage": {"ORDERS_TABLE": self.out["orders_table_name"]},
            "fulfill_order": {"ORDERS_TABLE": self.out["orders_table_name"], "FAILURE_RATE": "0.25"},
            "dlq_handler": {"ORDERS_TABLE": self.out["orders_table_name"], "FAILED_ORDERS_TABLE": self.out["failed_orders_table_name"]},
        }
        for fn in FUNCTIONS:
            cfg = self.function_config(fn)
            self.assertEqual(cfg["Runtime"], "provided.al2023", fn)
            self.assertEqual(cfg["Architectures"], ["arm64"], fn)
            self.assertEqual(cfg["Handler"], "bootstrap", fn)
            self.assertEqual(cfg["TracingConfig"]["Mode"], "Active", fn)
            env = cfg["Environment"]["Variables"]
            if fn == "api_handler" and "ORDER_TRACE_SAMPLE_RATE" in env:
                # The order trace sampling rate (issue 12's variable), a rate.
                self.assertTrue(0 <= float(env.pop("ORDER_TRACE_SAMPLE_RATE")) <= 1, fn)
            self.assertEqual(env.pop("LOG_LEVEL"), "DEBUG", fn)
            self.assertEqual(env.pop("DOFS_TRACE_EXPORTER"), "xray", fn)
            self.assertEqual(env, expected_env[fn], fn)

    def test_log_groups_have_retention_and_kms(self):
        groups = self.logs.describe_log_groups(logGroupNamePrefix="/aws/")["logGroups"]
        by_name = {g["logGroupName"]: g for g in groups}
        for fn in FUNCTIONS:
            group = by_name["/aws/lambda/" + self.fn_names[fn]]
            self.assertEqual(group.get("retentionInDays"), 30, fn)
            self.assertEqual(group.get("kmsKeyId"), self.out["kms_key_arn"], fn)

    # --- IAM --------------------------------------------------------------------

    def role_statements(self, role):
        found = []
        for name in self.iam.list_role_policies(RoleName=role)["PolicyNames"]:
            found += statements(self.iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])
        self.assertEqual(self.iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"], [], role)
        return found

    def assert_least_privilege(self, role, stmts):
        for st in stmts:
            self.assertEqual(st["Effect"], "Allow", role)
            actions = as_list(st["Action"])
            for action in actions:
                self.assertNotIn("*", action, f"{role}: wildcard action {action}")
            if "*" in as_list(st["Resource"]):
                self.assertTrue(set(actions) <= STAR_RESOURCE_ACTIONS, f"{role}: Resource * for {actions}")

    def test_function_roles_are_scoped_to_arns_and_their_own_log_group(self):
        for fn in FUNCTIONS:
            role = self.function_config(fn)["Role"].split("/")[-1]
            stmts = self.role_statements(role)
            self.assert_least_privilege(role, stmts)
            log_resources = {r for st in stmts if "logs:PutLogEvents" in as_list(st["Action"]) for r in as_list(st["Resource"])}
            self.assertEqual(log_resources, {f"arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/{self.fn_names[fn]}:*"}, fn)

    def test_api_handler_may_only_start_this_state_machine(self):
        role = self.function_config("api_handler")["Role"].split("/")[-1]
        for st in self.role_statements(role):
            if "states:StartExecution" in as_list(st["Action"]):
                self.assertEqual(as_list(st["Resource"]), [self.out["state_machine_arn"]])

    def test_workflow_role_invokes_two_functions_and_sends_to_both_queues(self):
        sm = self.sfn.describe_state_machine(stateMachineArn=self.out["state_machine_arn"])
        role = sm["roleArn"].split("/")[-1]
        stmts = self.role_statements(role)
        self.assert_least_privilege(role, stmts)
        invoke = {r for st in stmts if "lambda:InvokeFunction" in as_list(st["Action"]) for r in as_list(st["Resource"])}
        arns = {self.function_config(fn)["FunctionArn"] for fn in ("validator", "order_storage")}
        self.assertEqual({r.removesuffix(":*") for r in invoke}, arns)
        send = {r for st in stmts if "sqs:SendMessage" in as_list(st["Action"]) for r in as_list(st["Resource"])}
        self.assertEqual(send, {self.queue_attrs(u)["QueueArn"] for u in (self.order_queue, self.dlq)})

    # --- workflow ---------------------------------------------------------------

    def test_state_machine_is_the_rendered_asl_with_tracing_and_logging(self):
        sm = self.sfn.describe_state_machine(stateMachineArn=self.out["state_machine_arn"])
        self.assertEqual(sm["type"], WORKFLOW_TYPE)
        self.assertEqual(self.out["workflow_type"], WORKFLOW_TYPE)
        self.assertTrue(sm["tracingConfiguration"]["enabled"])
        # Every event, never the order itself: for Express the log group is
        # the only history there is, and execution data holds customer data.
        self.assertEqual(sm["loggingConfiguration"]["level"], "ALL")
        # The provider sends includeExecutionData only when true (the AWS SDK
        # for Go v2 drops a false bool), and left out it is false.
        self.assertIs(sm["loggingConfiguration"].get("includeExecutionData", False), False)
        log_group = self.logs.describe_log_groups(
            logGroupNamePrefix="/aws/vendedlogs/states/dofstest-dev-order-workflow")["logGroups"]
        self.assertEqual(
            [d["cloudWatchLogsLogGroup"]["logGroupArn"] for d in sm["loggingConfiguration"]["destinations"]],
            [g["arn"] if g["arn"].endswith(":*") else g["arn"] + ":*" for g in log_group],
        )
        with open(os.path.join(REPO, "terraform", "order_workflow.asl.json"), encoding="utf-8") as f:
            template = f.read()
        values = {
            "validator_function_arn": self.function_config("validator")["FunctionArn"],
            "order_storage_function_arn": self.function_config("order_storage")["FunctionArn"],
            "order_queue_url": self.order_queue,
            "dead_letter_queue_url": self.dlq,
        }
        expected = json.loads(re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], template))
        # Each lambda:invoke task waits for its function's timeout + 10 s
        # (workflow.tf); everything else is the file as it is.
        timeouts = {self.function_config(fn)["FunctionArn"]: self.function_config(fn)["Timeout"] for fn in FUNCTIONS}
        for state in expected["States"].values():
            if state.get("Resource") == "arn:aws:states:::lambda:invoke":
                state["TimeoutSeconds"] = timeouts[state["Parameters"]["FunctionName"]] + 10
        # The execution outlasts every task's worst case (each state runs at
        # most once, so their sum bounds any path), plus a minute: the file's
        # TimeoutSeconds, or that bound when larger.
        tasks = [s for s in expected["States"].values() if s["Type"] == "Task"]
        bound = math.ceil(sum(task_worst_case_seconds(s) for s in tasks)) + 60
        expected["TimeoutSeconds"] = max(expected["TimeoutSeconds"], bound)
        # Express cannot outlast its 5 minutes: the definition says so.
        if WORKFLOW_TYPE == "EXPRESS":
            expected["TimeoutSeconds"] = min(expected["TimeoutSeconds"], EXPRESS_MAX_SECONDS)
        self.maxDiff = None
        self.assertEqual(json.loads(sm["definition"]), expected)

    # --- tables ------------------------------------------------------------------

    def test_tables_are_on_demand_encrypted_with_pitr(self):
        for table in (self.out["orders_table_name"], self.out["failed_orders_table_name"]):
            desc = self.ddb.describe_table(TableName=table)["Table"]
            self.assertEqual(desc["KeySchema"], [{"AttributeName": "order_id", "KeyType": "HASH"}], table)
            self.assertEqual(desc["BillingModeSummary"]["BillingMode"], "PAY_PER_REQUEST", table)
            self.assertEqual(desc["SSEDescription"]["Status"], "ENABLED", table)
            pitr = self.ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
            self.assertEqual(pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"], "ENABLED", table)

    # --- API --------------------------------------------------------------------

    def api(self):
        api_id = self.out["api_url"].split("//")[1].split(".")[0]
        return api_id, self.apigw.get_api(ApiId=api_id)

    def test_api_routes_go_to_api_handler_with_payload_2_and_jwt(self):
        api_id, api = self.api()
        self.assertEqual(api["ProtocolType"], "HTTP")
        routes = self.apigw.get_routes(ApiId=api_id)["Items"]
        self.assertEqual({r["RouteKey"] for r in routes}, {"POST /orders", "GET /orders/{order_id}", "$default"})
        integrations = {i["IntegrationId"]: i for i in self.apigw.get_integrations(ApiId=api_id)["Items"]}
        handler_arn = self.function_config("api_handler")["FunctionArn"]
        for route in routes:
            self.assertEqual(route["AuthorizationType"], "JWT", route["RouteKey"])
            integration = integrations[route["Target"].split("/")[1]]
            self.assertEqual(integration["IntegrationType"], "AWS_PROXY")
            self.assertEqual(integration["PayloadFormatVersion"], "2.0")
            self.assertIn(handler_arn, integration["IntegrationUri"])

    def test_stage_has_json_access_logs_and_throttling(self):
        api_id, _ = self.api()
        stage = self.apigw.get_stage(ApiId=api_id, StageName="$default")
        fmt = json.loads(stage["AccessLogSettings"]["Format"])
        self.assertEqual(fmt["requestId"], "$context.requestId")
        self.assertEqual(fmt["integrationRequestId"], "$context.integration.requestId")
        self.assertTrue(stage["AccessLogSettings"]["DestinationArn"].startswith("arn:aws:logs:"))
        # Vended-log groups do not grow the account's log resource policy.
        self.assertIn(":log-group:/aws/vendedlogs/apigateway/", stage["AccessLogSettings"]["DestinationArn"])
        self.assertEqual(stage["DefaultRouteSettings"]["ThrottlingRateLimit"], 50)
        self.assertEqual(stage["DefaultRouteSettings"]["ThrottlingBurstLimit"], 100)
        self.assertFalse(stage["DefaultRouteSettings"].get("DetailedMetricsEnabled"))
        # Per route: writes (each a workflow execution) tighter than reads.
        routes = {k: (v["ThrottlingRateLimit"], v["ThrottlingBurstLimit"]) for k, v in stage["RouteSettings"].items()}
        self.assertEqual(routes, {"POST /orders": (10, 20), "GET /orders/{order_id}": (50, 100), "$default": (5, 10)})

    # --- observability -------------------------------------------------------------

    def test_every_catalogued_alarm_exists_with_its_metric_threshold_and_actions(self):
        alarms = {a["AlarmName"]: a for a in self.cw.describe_alarms(AlarmNamePrefix="dofstest-dev-")["MetricAlarms"]}
        topic = self.out["on_call_topic_arn"]
        expected_names = []
        for spec in self.alarm_catalog["alarms"]:
            names = (
                [f"dofstest-dev-{spec['name']}"]
                if spec["scope"] == "stack"
                else [f"{self.fn_names[fn]}-{spec['name']}" for fn in FUNCTIONS]
            )
            expected_names += names
            for name in names:
                alarm = alarms[name]
                self.assertEqual(alarm["Threshold"], float(spec["threshold"]), name)
                self.assertEqual(alarm["ComparisonOperator"], spec["comparison"], name)
                self.assertEqual(alarm["EvaluationPeriods"], spec["evaluation_periods"], name)
                self.assertEqual(alarm["TreatMissingData"], spec["treat_missing_data"], name)
                self.assertEqual(alarm["AlarmActions"], [topic], name)
                self.assertEqual(alarm["OKActions"], [topic], name)
                if "expression" in spec:
                    queries = {q["Id"]: q for q in alarm["Metrics"]}
                    exprs = [q for q in alarm["Metrics"] if q.get("Expression")]
                    self.assertEqual([q["Expression"] for q in exprs], [spec["expression"]], name)
                    for mid, metric in spec["metrics"].items():
                        stat = queries[mid]["MetricStat"]
                        self.assertEqual(stat["Metric"]["MetricName"], metric["metric_name"], name)
                        self.assertEqual(stat["Metric"]["Namespace"], metric["namespace"], name)
                        self.assertEqual(stat["Stat"], metric["statistic"], name)
                        self.assert_bound(stat["Metric"]["Dimensions"], name)
                else:
                    self.assertEqual(alarm["MetricName"], spec["metric_name"], name)
                    self.assertEqual(alarm["Namespace"], spec["namespace"], name)
                    self.assertEqual(alarm["Statistic"], spec["statistic"], name)
                    self.assertEqual(alarm["Period"], spec["period"], name)
                    self.assert_bound(alarm["Dimensions"], name)
        self.assertEqual(sorted(expected_names), sorted(alarms))
        self.assertEqual(sorted(expected_names), sorted(self.out["alarm_names"]))

    def assert_bound(self, dimensions, name):
        self.assertTrue(dimensions, name)
        for dim in dimensions:
            self.assertNotIn("${", dim["Value"], name)
            if dim["Name"] == "FunctionName":
                self.assertIn(dim["Value"], self.fn_names.values(), name)

    def test_on_call_topic_is_encrypted_with_subscriptions(self):
        topic = self.out["on_call_topic_arn"]
        attrs = self.sns.get_topic_attributes(TopicArn=topic)["Attributes"]
        self.assertEqual(attrs.get("KmsMasterKeyId"), self.out["kms_key_arn"])
        subs = self.sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        self.assertEqual(
            sorted((s["Protocol"], s["Endpoint"]) for s in subs),
            [("email", "on-call@example.com"), ("https", "https://pager.example.com/dofs")],
        )

    def test_dashboard_funnel_follows_the_metric_catalogue_and_lists_every_alarm(self):
        body = json.loads(self.cw.get_dashboard(DashboardName="dofstest-dev-orders")["DashboardBody"])
        self.assertNotIn("${", json.dumps(body))
        funnel = next(w for w in body["widgets"] if w["properties"].get("title", "").startswith("Order funnel"))
        counted = [
            m["name"] for m in self.metric_catalog["metrics"] if m["unit"] == "Count" and m["function"] != "*"
        ]
        self.assertEqual([m[1] for m in funnel["properties"]["metrics"]], counted)
        # Scoped to this stack: the dimension value is the deployed function name.
        emitter = {m["name"]: m["function"] for m in self.metric_catalog["metrics"]}
        for m in funnel["properties"]["metrics"]:
            self.assertEqual(m[2:4], ["function", self.fn_names[emitter[m[1]]]], m)
        alarm_widget = next(w for w in body["widgets"] if w["type"] == "alarm")
        alarm_arns = {a["AlarmArn"] for a in self.cw.describe_alarms(AlarmNamePrefix="dofstest-dev-")["MetricAlarms"]}
        self.assertEqual(set(alarm_widget["properties"]["alarms"]), alarm_arns)

    def test_saved_queries_cover_the_order_journey_and_errors(self):
        queries = {q["name"]: q for q in self.logs.describe_query_definitions()["queryDefinitions"]}
        journey = queries["dofstest-dev/one order's journey by order_id"]
        self.assertEqual(
            set(journey["logGroupNames"]),
            {"/aws/lambda/" + self.fn_names[fn] for fn in FUNCTIONS}
            | {"/aws/vendedlogs/states/dofstest-dev-order-workflow"},
        )
        self.assertIn("ORDER_ID", journey["queryString"])
        errors = queries["dofstest-dev/errors by function"]
        self.assertEqual(set(errors["logGroupNames"]), {"/aws/lambda/" + self.fn_names[fn] for fn in FUNCTIONS})
        # Lambda's own failure records (timeouts, OOM, init) are errors too.
        self.assertIn('record.status != "success"', errors["queryString"])


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
