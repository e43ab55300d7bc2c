"""moto's server with the few AWS calls Terraform makes that moto lacks.

The AWS provider validates a state machine definition before creating it
(states:ValidateStateMachineDefinition), lists its versions when reading it
(states:ListStateMachineVersions), and manages Logs Insights saved queries
(logs:PutQueryDefinition and friends); moto 5 implements none of them. This
wrapper answers those calls itself (query definitions are kept in memory so
the test can read back what Terraform created) and hands everything else to
moto unchanged. Test-only: the real stack never talks to it.

Usage: python moto_wrapper.py PORT_FILE
Binds 127.0.0.1 on a free port, writes the port to PORT_FILE once it serves,
and runs until terminated.
"""

import io
import json
import signal
import sys
import threading
import time
import uuid

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


class ExtraCalls:
    """WSGI middleware answering the JSON-protocol calls listed in HANDLERS."""

    def __init__(self, app):
        self.app = app
        self.queries = QueryDefinitions()
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
        handler = self.handlers.get(environ.get("HTTP_X_AMZ_TARGET", ""))
        if handler is None:
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
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
        environ["wsgi.input"] = io.BytesIO(body)
        return [payload]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: moto_wrapper.py PORT_FILE")
    app = ExtraCalls(DomainDispatcherApplication(create_backend_app))
    server = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler
    )
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        f.write(str(server.server_port))
    server.serve_forever()


if __name__ == "__main__":
    main()
