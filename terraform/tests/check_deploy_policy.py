"""The deploy role's documented policy (terraform/cicd/deploy-role-policy.json.tftpl)
against what Terraform really does with it.

    python check_deploy_policy.py REQUEST_LOG STATE_JSON REPO_ROOT

REQUEST_LOG is the moto request log of scripts/terraform-test.sh (every call
the AWS provider and the S3 backend made while the stack was applied,
planned, gated and destroyed, and while envs/dev and envs/prod were planned
on their state keys); STATE_JSON is `terraform show -json` of the applied
stack. The policy is rendered as terraform/cicd renders it, once per stack
the log touches (dofstest-dev for the apply, dofs-dev and dofs-prod for the
environment plans). Checks:
- every call Terraform signed is allowed: its IAM action
  (terraform/tests/aws_requests.py) by some statement, on the resource it
  names where the request names one (tables, queues, roles, functions, log
  groups, topics, alarms, keys, API paths, the state objects); a create
  that carries tags also needs the service's tagging action;
- what AWS authorises without a call of its own: iam:PassRole for each role
  a function or the state machine is given; for the KMS-encrypted tables and
  function environments, the key grants DynamoDB and Lambda make on the
  caller's behalf (DynamoDB and Lambda developer guides); the vended-log
  delivery calls for API access logs (API Gateway, "permissions for
  CloudWatch logging");
- every resource the apply created (its ARN) is covered by a statement of
  its service, so the policy's name patterns match what Terraform names;
- every AWS CLI call of the post-deploy smoke scripts the apply buildspec
  runs (they run with the deploy role) is allowed.
Conditions in the policy are not evaluated. Exits non-zero listing every
problem.
"""

import json
import os
import re
import sys
from fnmatch import fnmatchcase

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aws_requests  # noqa: E402

REGION, ACCOUNT, PARTITION = "us-east-1", "123456789012", "aws"
TERRAFORM_KEY = "testing"  # the access key of the provider and backend on moto
STATE_BUCKET = "dofs-test-state"
STACKS = {"dofstest-dev": "dofs/dev.tfstate", "dofs-dev": "dofs/dev.tfstate", "dofs-prod": "dofs/prod.tfstate"}
# Calls the provider makes but can do without: when refused it falls back.
TOLERATED = {
    "iam:GetUser": "aws-sdk-go-base asks IAM for the caller's account first and falls back to sts:GetCallerIdentity",
}
# Tag-on-create: a create carrying tags is also authorised as this action.
TAG_ACTIONS = {
    "iam": "iam:TagRole", "lambda": "lambda:TagResource", "sqs": "sqs:TagQueue", "sns": "sns:TagResource",
    "dynamodb": "dynamodb:TagResource", "logs": "logs:TagResource", "states": "states:TagResource",
    "kms": "kms:TagResource", "monitoring": "cloudwatch:TagResource",
}
KMS_ON_BEHALF = {
    "aws_dynamodb_table": ["kms:CreateGrant", "kms:DescribeKey", "kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
    "aws_lambda_function": ["kms:CreateGrant", "kms:Encrypt", "kms:Decrypt"],
}
ACCESS_LOG_DELIVERY = [
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
]

problems = []


def problem(msg):
    problems.append(msg)


def render(template, stack, state_key):
    values = {
        "partition": PARTITION, "region": REGION, "account_id": ACCOUNT, "stack": stack,
        "state_bucket": STATE_BUCKET, "state_key": state_key,
    }
    text = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], template)
    doc = json.loads(text)
    statements = []
    for st in doc["Statement"]:
        if st.get("Effect") != "Allow":
            continue
        as_list = lambda v: v if isinstance(v, list) else [v]  # noqa: E731
        statements.append((st.get("Sid"), as_list(st["Action"]), as_list(st["Resource"])))
    return statements


def allowed(statements, action, resource):
    for _, actions, resources in statements:
        if any(fnmatchcase(action, a) for a in actions):
            if resource is None or any(fnmatchcase(resource, r) for r in resources):
                return True
    return False


def arn(service, resource):
    return f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT}:{resource}"


def request_resource(request, action):
    """The ARN a request acts on, where it names one."""
    f = request.get("fields", {})
    service = request.get("service")
    path = request.get("path", "")
    if service == "apigateway":
        return aws_requests.apigateway_resource(request, REGION)
    if service == "s3":
        parts = path.lstrip("/").split("/", 1)
        return f"arn:{PARTITION}:s3:::{parts[0]}" + (f"/{parts[1]}" if len(parts) > 1 and parts[1] else "")
    if service == "dynamodb" and "TableName" in f:
        return arn("dynamodb", f"table/{f['TableName']}")
    if service == "sqs":
        name = f.get("QueueName") or (f.get("QueueUrl", "").rstrip("/").rsplit("/", 1)[-1] or None)
        return arn("sqs", name) if name else None
    if service == "states":
        if "stateMachineArn" in f:
            return f["stateMachineArn"]
        if action == "states:CreateStateMachine" and "name" in f:
            return arn("states", f"stateMachine:{f['name']}")
        if "resourceArn" in f:
            return f["resourceArn"]
        return None
    if service == "iam" and "RoleName" in f:
        return f"arn:{PARTITION}:iam::{ACCOUNT}:role/{f['RoleName']}"
    if service == "lambda":
        m = re.match(r"^/[0-9-]+/functions/([^/]+)", path)
        name = m.group(1) if m else f.get("FunctionName")
        if m is None and path.startswith("/2017-03-31/tags/"):
            return path.split("/tags/", 1)[1]
        if name:
            name = name.split(":function:")[-1].split(":")[0]
            return arn("lambda", f"function:{name}")
        return None
    if service == "logs" and "logGroupName" in f:
        return arn("logs", f"log-group:{f['logGroupName']}")
    if service == "logs" and "resourceArn" in f:
        return f["resourceArn"].removesuffix(":*")
    if service == "sns":
        if "TopicArn" in f:
            return f["TopicArn"]
        if "SubscriptionArn" in f:
            return f["SubscriptionArn"].rsplit(":", 1)[0]
        if "Name" in f:
            return arn("sns", f["Name"])
        if "ResourceArn" in f:
            return f["ResourceArn"]
        return None
    if service == "monitoring":
        name = f.get("AlarmName") or f.get("AlarmNames.member.1")
        if name:
            return arn("cloudwatch", f"alarm:{name}")
        dash = f.get("DashboardName") or f.get("DashboardNames.member.1")
        if dash:
            return f"arn:{PARTITION}:cloudwatch::{ACCOUNT}:dashboard/{dash}"
        if "ResourceARN" in f:
            return f["ResourceARN"]
        return None
    if service == "kms":
        if action in ("kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias") and "AliasName" in f:
            return arn("kms", f["AliasName"])
        key = f.get("KeyId") or f.get("TargetKeyId")
        if key:
            # KMS authorises a call naming an alias against the key behind it.
            if key.startswith("alias/") or ":alias/" in key:
                return arn("kms", "key/*")
            return key if key.startswith("arn:") else arn("kms", f"key/{key}")
        return None
    return None


def stack_of(text):
    """The stack a resource name belongs to (longest name first)."""
    for stack in sorted(STACKS, key=len, reverse=True):
        if text and stack in text:
            return stack
    if text and STATE_BUCKET in text:
        key = text.split(f"{STATE_BUCKET}/", 1)[-1]
        for stack, state_key in STACKS.items():
            if key.startswith(state_key) and stack != "dofstest-dev":
                return stack
    return None


def state_resources(state):
    out = []

    def walk(module):
        out.extend(r for r in module.get("resources", []) if r.get("mode") == "managed")
        for child in module.get("child_modules", []):
            walk(child)

    walk(state["values"]["root_module"])
    return out


def smoke_calls(repo):
    """(service, operation, script) of every AWS CLI call of the smoke
    scripts the apply buildspec runs (`aws("xray", "get-trace-summaries", ...)`)."""
    with open(os.path.join(repo, "terraform", "cicd", "buildspec-apply.yml"), encoding="utf-8") as f:
        scripts = sorted(set(re.findall(r"scripts/(smoke-[\w-]+\.sh)", f.read())))
    if not scripts:
        problem("the apply buildspec runs no post-deploy smoke check (scripts/smoke-*.sh)")
    calls = []
    for script in scripts:
        with open(os.path.join(repo, "scripts", script), encoding="utf-8") as f:
            text = f.read()
        found = re.findall(r'aws\("([a-z0-9-]+)",\s*"([a-z0-9-]+)"', text)
        if not found:
            problem(f"scripts/{script}: no AWS CLI call found to check")
        calls.extend((service, operation, f"scripts/{script}") for service, operation in found)
    return calls


def main():
    log_path, state_path, repo = sys.argv[1:4]
    with open(os.path.join(repo, "terraform", "cicd", "deploy-role-policy.json.tftpl"), encoding="utf-8") as f:
        template = f.read()
    policies = {stack: render(template, stack, key) for stack, key in STACKS.items()}
    requests = [r for r in aws_requests.read_log(log_path) if r.get("access_key") == TERRAFORM_KEY]
    if not requests:
        problem("no request signed by Terraform in the log")
    checked = set()
    for request in requests:
        action = aws_requests.iam_action(request)
        if action is None:
            problem(f"a Terraform request the check cannot name: {request}")
            continue
        if action in TOLERATED:
            continue
        resource = request_resource(request, action)
        stack = stack_of(resource) or "dofstest-dev"
        needed = [action]
        if request.get("tagged") and request.get("service") in TAG_ACTIONS:
            needed.append(TAG_ACTIONS[request["service"]])
        for need in needed:
            if (need, resource, stack) in checked:
                continue
            checked.add((need, resource, stack))
            if not allowed(policies[stack], need, resource):
                problem(f"{stack}: Terraform needs {need}" + (f" on {resource}" if resource else "") + ", which the deploy policy does not allow")

    with open(state_path, encoding="utf-8") as f:
        resources = state_resources(json.load(f))
    policy = policies["dofstest-dev"]
    for r in resources:
        v = r["values"]
        if r["type"] == "aws_lambda_function":
            for need in ["iam:PassRole"]:
                if not allowed(policy, need, v["role"]):
                    problem(f"{r['address']}: passing {v['role']} needs iam:PassRole, which the deploy policy does not allow")
        if r["type"] == "aws_sfn_state_machine" and not allowed(policy, "iam:PassRole", v["role_arn"]):
            problem(f"{r['address']}: passing {v['role_arn']} needs iam:PassRole, which the deploy policy does not allow")
        key = None
        if r["type"] == "aws_dynamodb_table":
            key = (v.get("server_side_encryption") or [{}])[0].get("kms_key_arn")
        elif r["type"] == "aws_lambda_function":
            key = v.get("kms_key_arn")
        for need in KMS_ON_BEHALF.get(r["type"], []) if key else []:
            if not allowed(policy, need, key):
                problem(f"{r['address']}: encrypting with {key} needs {need}, which the deploy policy does not allow")
        if r["type"] == "aws_apigatewayv2_stage" and v.get("access_log_settings"):
            for need in ACCESS_LOG_DELIVERY:
                if not allowed(policy, need, "*"):
                    problem(f"{r['address']}: access logging needs {need} on *, which the deploy policy does not allow")
        resource_arn = v.get("arn")
        if isinstance(resource_arn, str) and resource_arn.startswith("arn:"):
            service = resource_arn.split(":")[2]
            prefix = {"monitoring": "cloudwatch"}.get(service, service)
            covered = any(
                any(a.startswith(f"{prefix}:") for a in actions) and any(fnmatchcase(resource_arn.removesuffix(":*"), p) for p in patterns)
                for _, actions, patterns in policy
            )
            if not covered:
                problem(f"{r['address']}: {resource_arn} is matched by no {prefix} statement of the deploy policy")

    # The apply build runs the post-deploy smoke checks with the deploy
    # role: every `aws <service> <operation>` they call must be allowed.
    for service, operation, script in smoke_calls(repo):
        need = f"{service}:{''.join(word.capitalize() for word in operation.split('-'))}"
        if not allowed(policy, need, None):
            problem(f"{script} calls aws {service} {operation}: the deploy policy does not allow {need}")

    print(f"deploy policy: {len(requests)} Terraform requests, {len(checked)} distinct (action, resource) pairs, {len(resources)} resources checked")
    for p in problems:
        print(f"FAIL {p}")
    print(f"deploy policy: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
