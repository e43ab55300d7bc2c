"""AWS requests, as terraform/tests/moto_wrapper.py --record logs them, turned
into the IAM actions that authorise them.

A request names its operation in one of four ways, by protocol: the
X-Amz-Target header (JSON: DynamoDB, SQS, Step Functions, Logs, KMS), the
Action parameter (query: IAM, STS, SNS, CloudWatch), the path of a Smithy
RPCv2 call, or its method and path (REST: Lambda, API Gateway, S3), which
are matched against botocore's service models (`requestUri` of every
operation). The IAM action is the service's IAM prefix and the operation,
except where the Service Authorization Reference names it otherwise
(IAM_ACTION_EXCEPTIONS; API Gateway authorises by HTTP method and path).

Used by check_iam.py (each function's calls) and check_deploy_policy.py
(Terraform's calls). botocore comes with boto3 in the tools venv.
"""

import re
from functools import lru_cache

import botocore.session

# SigV4 signing name -> the botocore services signed with it, where the two
# names differ.
SIGNING_NAME_SERVICES = {
    "monitoring": ["cloudwatch"],
    "apigateway": ["apigatewayv2", "apigateway"],
    "states": ["stepfunctions"],
    "execute-api": [],
}
# SigV4 signing name -> IAM service prefix, where the two differ.
IAM_PREFIX = {"monitoring": "cloudwatch"}
# Operations authorised by an IAM action of another name (Service
# Authorization Reference, Amazon S3 "Actions defined by").
IAM_ACTION_EXCEPTIONS = {
    "s3:HeadObject": "s3:GetObject",
    "s3:HeadBucket": "s3:ListBucket",
    "s3:ListObjects": "s3:ListBucket",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjectVersions": "s3:ListBucketVersions",
}
RPCV2_PATH = re.compile(r"^/service/[^/]+/operation/([A-Za-z0-9]+)$")


@lru_cache(maxsize=None)
def _session():
    return botocore.session.get_session()


@lru_cache(maxsize=None)
def _rest_operations(service):
    """(method, path regex, required query keys, specificity, name) of every
    operation of a REST botocore service, most specific first."""
    model = _session().get_service_model(service)
    ops = []
    for name in model.operation_names:
        operation_model = model.operation_model(name)
        http = operation_model.http
        uri = http.get("requestUri", "/")
        path, _, query = uri.partition("?")
        path = path.rstrip("/") or "/"
        # "uploads" must be present; "x-id=PutObject" must have that value.
        keys = frozenset(tuple(part.split("=", 1)) if "=" in part else (part,) for part in query.split("&") if part)
        # Operations sharing a method and path differ by their required query
        # parameters and x-amz- headers (S3: DeleteObject and
        # AbortMultipartUpload's uploadId, PutObject and CopyObject's
        # x-amz-copy-source).
        shape = operation_model.input_shape
        for member in (shape.required_members if shape else []):
            where = shape.members[member].serialization
            if where.get("location") == "querystring":
                keys |= {(where["name"],)}
            elif where.get("location") == "header" and where["name"].lower().startswith("x-amz-"):
                keys |= {("header:" + where["name"].lower(),)}
        for greedy_segments in (False, True):
            pattern = ""
            for piece in re.split(r"(\{[^}]+\})", path):
                if piece.startswith("{"):
                    pattern += ".+" if piece.endswith("+}") or greedy_segments else "[^/]+"
                else:
                    pattern += re.escape(piece)
            literal = len(re.sub(r"\{[^}]+\}", "", path))
            ops.append((http["method"], re.compile(f"^{pattern}/?$"), keys, (not greedy_segments, len(keys), literal), name))
    ops.sort(key=lambda op: op[3], reverse=True)
    return ops


def _query_matches(keys, query, headers):
    for key in keys:
        if key[0].startswith("header:"):
            if key[0][7:] not in headers:
                return False
        elif key[0] not in query or (len(key) == 2 and query[key[0]] != key[1]):
            return False
    return True


def _rest_operation(signing_name, method, path, query, headers):
    services = SIGNING_NAME_SERVICES.get(signing_name, [signing_name])
    for service in services:
        candidates = [
            name
            for op_method, pattern, keys, _, name in _rest_operations(service)
            if op_method == method and _query_matches(keys, query, headers) and pattern.match(path)
        ]
        if candidates:
            return service, candidates[0]
    return None, None


def operation(request):
    """(signing name, operation name) of one logged request; the operation is
    None when it cannot be told (then the caller reports the request)."""
    service = request.get("service")
    target = request.get("target")
    if target:
        return service, target.rsplit(".", 1)[-1]
    if request.get("action"):
        return service, request["action"]
    rpc = RPCV2_PATH.match(request.get("path", ""))
    if rpc:
        return service, rpc.group(1)
    if service is None:
        return None, None
    query = request.get("query") or {}
    if isinstance(query, list):  # older logs kept the keys only
        query = {k: "" for k in query}
    _, name = _rest_operation(service, request["method"], request["path"], query, request.get("headers", []))
    return service, name


def iam_action(request):
    """The IAM action that authorises one logged request, or None."""
    service, op = operation(request)
    if op is None:
        return None
    if service == "apigateway":
        return f"apigateway:{request['method']}"
    action = f"{IAM_PREFIX.get(service, service)}:{op}"
    return IAM_ACTION_EXCEPTIONS.get(action, action)


def apigateway_resource(request, region):
    """The IAM resource of an API Gateway management call: its path without
    the /v2 version prefix."""
    path = re.sub(r"^/v2(?=/)", "", request["path"])
    return f"arn:aws:apigateway:{region}::{path}"


def read_log(path):
    """The requests of a --record log, in order."""
    import json

    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
