"""A Python 3 + boto3 stand-in for a DOFS function, for lambda_bench only.

It does what the Rust bootstraps do before their first /next, so their
cold starts and memory can be compared: read the same configuration, build
the same boto3 clients once per process, then loop on the Lambda Runtime
API. Each invocation makes the same first AWS call the Rust function makes
(a DynamoDB read or write), so the first
invocation also pays for connection setup. The loop is written with urllib
because the Python managed runtime's own client is not installed here.

Usage: bootstrap.py <function name>
"""

import json
import os
import sys
import urllib.request

import boto3

FUNCTION = sys.argv[1]
API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"


def required(name):
    value = os.environ.get(name, "").strip()
    if not value:
        raise SystemExit(f"{name} is not set")
    return value


ORDERS_TABLE = required("ORDERS_TABLE") if FUNCTION != "validator" else None
session = boto3.session.Session()
dynamodb = session.client("dynamodb") if ORDERS_TABLE else None
sfn = session.client("stepfunctions") if FUNCTION == "api_handler" else None
STATE_MACHINE_ARN = required("STATE_MACHINE_ARN") if sfn else None
FAILED_ORDERS_TABLE = required("FAILED_ORDERS_TABLE") if FUNCTION == "dlq_handler" else None


def handle(event):
    if FUNCTION == "api_handler":
        order_id = event["rawPath"].rsplit("/", 1)[-1]
        item = dynamodb.get_item(TableName=ORDERS_TABLE, Key={"order_id": {"S": order_id}}, ConsistentRead=True)
        if "Item" not in item:
            return {"statusCode": 404, "body": json.dumps({"error": "not found"})}
        return {"statusCode": 200, "body": "{}"}
    if FUNCTION == "validator":
        order = dict(event, status="VALIDATED")
        return {"order": order}
    if FUNCTION == "order_storage":
        order = event["order"]
        dynamodb.put_item(TableName=ORDERS_TABLE, Item={"order_id": {"S": order["order_id"]}, "status": {"S": "PENDING"}})
        return {"order": dict(order, status="PENDING")}
    # fulfill_order and dlq_handler: one update per record.
    for record in event["Records"]:
        order = json.loads(record["body"])
        dynamodb.update_item(
            TableName=ORDERS_TABLE,
            Key={"order_id": {"S": order["order_id"]}},
            UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "FULFILLED" if FUNCTION == "fulfill_order" else "FAILED"}},
        )
    return {"batchItemFailures": []}


while True:
    with urllib.request.urlopen(API + "/invocation/next") as response:
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(response.read())
    try:
        body, path = json.dumps(handle(event)).encode(), f"/invocation/{request_id}/response"
    except Exception as err:  # reported to Lambda, like any unhandled error
        body = json.dumps({"errorType": type(err).__name__, "errorMessage": str(err)}).encode()
        path = f"/invocation/{request_id}/error"
    urllib.request.urlopen(urllib.request.Request(API + path, data=body, method="POST")).read()
