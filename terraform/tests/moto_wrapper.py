"""moto's server with the few AWS calls Terraform makes that moto lacks.

The AWS provider validates a state machine definition before creating it
(states:ValidateStateMachineDefinition), lists its versions when reading it
(states:ListStateMachineVersions), and manages Logs Insights saved queries
(logs:PutQueryDefinition and friends); moto 5 implements none of them, and it
silently drops the SQS RedriveAllowPolicy attribute (so the provider would
wait forever for it to appear). One transport flake is absorbed too: when a
CreateFunction that moto carried out loses its response, the SDK sends the
same request again and moto answers 409, which the provider retries for its
whole create timeout and then fails on; a repeat of a CreateFunction moto
already answered 201, byte for byte, gets that first answer again (and a
line on stderr). A CreateFunction that differs still gets moto's 409. This wrapper answers those calls itself
(query definitions and redrive-allow policies are kept in memory so the test
can read back what Terraform created) and hands everything else to moto
unchanged. Test-only: the real stack never talks to it.

With --record FILE it also appends one JSON line per request to FILE: who
signed it (the access key id of its SigV4 credential), the signing service,
method, path, query, X-Amz-Target, the query protocol's Action and the
request's resource names (TableName, QueueUrl, stateMachineArn, ...). The
IAM tests turn those into IAM actions (terraform/tests/aws_requests.py): the
calls Terraform makes when it applies the stack (check_deploy_policy.py) and
the calls each function's bootstrap makes on moto, told apart by the access
key each one is given (harness/tests/it/iam.rs, check_iam.py).

Usage:
    python moto_wrapper.py [--record FILE] PORT_FILE
        binds 127.0.0.1 on a free port, writes the port to PORT_FILE once it
        serves, and runs until terminated;
    python moto_wrapper.py [--record FILE] -H HOST -p PORT
        moto_server's own command line, on the given address.
"""

import argparse
import hashlib
import io
import json
import re
import signal
import sys
import threading
import time
import uuid
from urllib.parse import parse_qs

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server


class QueryDefinitions:
    """In-memory CloudWatch Logs saved queries, enough for the provider's CRUD."""

    def __init__(self):
        self._lock = threading.Lock()
        self._items = {}

    def put(self, req):
        with self._lock:
            qid = req.get("queryDefinitionId") or str(uuid.uuid4())
            self._items[qid] = {
                "queryDefinitionId": qid,
                "name": req["name"],
                "queryString": req["queryString"],
                "logGroupNames": req.get("logGroupNames", []),
                "lastModified": int(time.time() * 1000),
            }
            return {"queryDefinitionId": qid}

    def describe(self, req):
        prefix = req.get("queryDefinitionNamePrefix", "")
        with self._lock:
            items = [q for q in self._items.values() if q["name"].startswith(prefix)]
        return {"queryDefinitions": items}

    def delete(self, req):
        with self._lock:
            found = self._items.pop(req["queryDefinitionId"], None) is not None
        if not found:
            raise KeyError(req["queryDefinitionId"])
        return {"success": True}


class RedriveAllowPolicies:
    """SQS RedriveAllowPolicy per queue URL, layered over moto's queue attributes."""

    ATTRIBUTE = "RedriveAllowPolicy"

    def __init__(self):
        self._lock = threading.Lock()
        self._by_queue = {}

    def take_from_set(self, req):
        """Keeps the attribute out of the request moto sees; returns the rest."""
        attrs = dict(req.get("Attributes", {}))
        if self.ATTRIBUTE in attrs:
            value = attrs.pop(self.ATTRIBUTE)
            with self._lock:
                if value:
                    self._by_queue[req["QueueUrl"]] = value
                else:
                    self._by_queue.pop(req["QueueUrl"], None)
        return dict(req, Attributes=attrs)

    def add_to_get(self, req, response):
        names = req.get("AttributeNames", [])
        if "All" not in names and self.ATTRIBUTE not in names:
            return response
        with self._lock:
            value = self._by_queue.get(req["QueueUrl"])
        if value is not None:
            response.setdefault("Attributes", {})[self.ATTRIBUTE] = value
        return response


class CreateFunctionRepeats:
    """The first answer to each CreateFunction moto carried out, by request body."""

    PATH = "/2015-03-31/functions"

    def __init__(self):
        self.lock = threading.Lock()
        self.answered = {}  # function name -> (body digest, status, headers, body)

    def handle(self, forward, environ, body, start_response):
        try:
            name = json.loads(body or b"{}").get("FunctionName")
        except ValueError:
            name = None
        digest = hashlib.sha256(body).hexdigest()
        status, headers, out = forward(environ, body)
        with self.lock:
            first = self.answered.get(name)
            if status.startswith("201"):
                self.answered[name] = (digest, status, headers, out)
            elif status.startswith("409") and first and first[0] == digest:
                print(f"moto_wrapper: CreateFunction {name} repeated after it succeeded; answered as the first time",
                      file=sys.stderr, flush=True)
                _, status, headers, out = first
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, headers + [("Content-Length", str(len(out)))])
        return [out]


class ExtraCalls:
    """WSGI middleware answering the JSON-protocol calls listed in HANDLERS."""

    def __init__(self, app):
        self.app = app
        self.queries = QueryDefinitions()
        self.redrive_allow = RedriveAllowPolicies()
        self.create_function = CreateFunctionRepeats()
        self.handlers = {
            "AWSStepFunctions.ValidateStateMachineDefinition": lambda req: {
                "result": "OK",
                "diagnostics": [],
                "truncated": False,
            },
            "AWSStepFunctions.ListStateMachineVersions": lambda req: {
                "stateMachineVersions": []
            },
            "Logs_20140328.PutQueryDefinition": self.queries.put,
            "Logs_20140328.DescribeQueryDefinitions": self.queries.describe,
            "Logs_20140328.DeleteQueryDefinition": self.queries.delete,
        }

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == CreateFunctionRepeats.PATH:
            return self.create_function.handle(self.forward, environ, self.read_body(environ), start_response)
        if target in ("AmazonSQS.SetQueueAttributes", "AmazonSQS.GetQueueAttributes"):
            return self.sqs_attributes(target, environ, start_response)
        handler = self.handlers.get(target)
        if handler is None:
            return self.app(environ, start_response)
        body = self.read_body(environ)
        try:
            result = handler(json.loads(body or b"{}"))
            status = "200 OK"
        except KeyError as missing:
            result = {
                "__type": "ResourceNotFoundException",
                "message": f"not found: {missing}",
            }
            status = "400 Bad Request"
        payload = json.dumps(result).encode()
        start_response(
            status,
            [
                ("Content-Type", "application/x-amz-json-1.1"),
                ("Content-Length", str(len(payload))),
                ("x-amzn-RequestId", str(uuid.uuid4())),
            ],
        )
        return [payload]

    @staticmethod
    def read_body(environ):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        return environ["wsgi.input"].read(length) if length else b""

    def forward(self, environ, body):
        """Calls moto with `body`; returns its status, headers and body."""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers

        chunks = self.app(environ, capture)
        try:
            out = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        return captured["status"], captured["headers"], out

    def sqs_attributes(self, target, environ, start_response):
        req = json.loads(self.read_body(environ) or b"{}")
        forwarded = req
        if target == "AmazonSQS.SetQueueAttributes":
            forwarded = self.redrive_allow.take_from_set(req)
        else:
            # moto refuses the attribute name outright.
            names = [n for n in req.get("AttributeNames", []) if n != RedriveAllowPolicies.ATTRIBUTE]
            forwarded = dict(req, AttributeNames=names)
        if target == "AmazonSQS.GetQueueAttributes" and req.get("AttributeNames") and not forwarded["AttributeNames"]:
            status, headers, out = "200 OK", [("Content-Type", "application/x-amz-json-1.0")], b"{}"
        else:
            status, headers, out = self.forward(environ, json.dumps(forwarded).encode())
        if target == "AmazonSQS.GetQueueAttributes" and status.startswith("200"):
            out = json.dumps(self.redrive_allow.add_to_get(req, json.loads(out or b"{}"))).encode()
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, headers + [("Content-Length", str(len(out)))])
        return [out]


class RequestLog:
    """WSGI middleware appending one JSON line per request to a file."""

    # Request fields that name the resource a call acts on.
    RESOURCE_FIELDS = (
        "TableName", "QueueUrl", "QueueName", "stateMachineArn", "executionArn", "name", "FunctionName",
        "RoleName", "TopicArn", "Name", "SubscriptionArn", "logGroupName", "KeyId", "AliasName", "TargetKeyId",
        "AlarmName", "AlarmNames.member.1", "DashboardName", "DashboardNames.member.1",
        "ResourceARN", "ResourceArn", "resourceArn", "resourceArns",
    )
    CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/([^/]+)/aws4_request")

    def __init__(self, app, path):
        self.app = app
        self.lock = threading.Lock()
        self.file = open(path, "a", encoding="utf-8")

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = b""
        if length:
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
        try:
            self.write(environ, body)
        except Exception as err:  # a log line must never break the request
            print(f"moto_wrapper: request log: {err}", file=sys.stderr)
        return self.app(environ, start_response)

    def write(self, environ, body):
        auth = environ.get("HTTP_AUTHORIZATION", "")
        cred = self.CREDENTIAL.search(auth)
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        content_type = environ.get("CONTENT_TYPE", "")
        form = {}
        if "x-www-form-urlencoded" in content_type:
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        fields = {k: v[0] for k, v in form.items() if k in self.RESOURCE_FIELDS}
        tagged = any(k.startswith(("Tags.", "Tag.", "tags.")) for k in form)
        if body[:1] == b"{":
            try:
                doc = json.loads(body)
                fields = {k: doc[k] for k in self.RESOURCE_FIELDS if isinstance(doc.get(k), (str, list))}
                tagged = bool(doc.get("Tags") or doc.get("tags"))
            except ValueError:
                pass
        record = {
            "access_key": cred.group(1) if cred else None,
            "service": cred.group(3) if cred else None,
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO", ""),
            "query": {k: v[0][:200] for k, v in query.items()},
            "headers": sorted(k[5:].lower().replace("_", "-") for k in environ if k.startswith("HTTP_X_AMZ_")),
            "target": environ.get("HTTP_X_AMZ_TARGET"),
            "action": (form.get("Action") or query.get("Action") or [None])[0],
            "fields": fields,
            # Tag-on-create: a create call carrying tags needs the service's
            # tagging action too.
            "tagged": tagged or bool(environ.get("HTTP_X_AMZ_TAGGING")),
        }
        line = json.dumps(record, sort_keys=True)
        with self.lock:
            self.file.write(line + "\n")
            self.file.flush()


def main():
    parser = argparse.ArgumentParser(description="moto with the calls Terraform needs that moto lacks")
    parser.add_argument("port_file", nargs="?", help="write the bound port here (free port)")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=0)
    parser.add_argument("--record", help="append one JSON line per request to this file")
    args = parser.parse_args()
    if args.port_file is None and args.port == 0:
        parser.error("give PORT_FILE or -p PORT")
    app = ExtraCalls(DomainDispatcherApplication(create_backend_app))
    if args.record:
        app = RequestLog(app, args.record)
    server = make_server(
        args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler
    )
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    if args.port_file:
        with open(args.port_file, "w", encoding="utf-8") as f:
            f.write(str(server.server_port))
    server.serve_forever()


if __name__ == "__main__":
    main()
