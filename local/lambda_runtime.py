"""Run template.yaml's handlers in process, as Lambda and API Gateway would call them."""

from __future__ import annotations

import base64
import importlib.util
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, unquote

from local.template import Function


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object that Powertools reads."""

    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = ""
    _deadline: float = field(default_factory=lambda: time.time() + 30)

    def __post_init__(self) -> None:
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


@cache
def _load(path: str, module_name: str, attribute: str) -> Callable[[dict[str, Any], Any], Any]:
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return getattr(module, attribute)


def handler_of(function: Function) -> Callable[[dict[str, Any], Any], Any]:
    """Import a function's handler from its CodeUri, as the Lambda runtime would."""
    module, attribute = function.handler.rsplit(".", 1)
    path = function.code_dir / (module.replace(".", "/") + ".py")
    return _load(str(path), f"lambda_{function.logical_id}_{module}", attribute)


class FunctionTimedOut(Exception):
    """The handler ran past the function's ``Timeout`` (Lambda stops it and reports an error)."""


def invoke(function: Function, event: dict[str, Any]) -> Any:
    """Call a function's handler with a fresh context, its ``MemorySize`` and its ``Timeout``.

    A handler still running at its timeout is abandoned (its thread cannot be killed, so it may
    finish its current call in the background) and the invocation fails, as in Lambda.
    """
    context = LambdaContext(
        function.logical_id,
        memory_limit_in_mb=function.memory_mb,
        _deadline=time.time() + function.timeout_seconds,
    )
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = handler_of(function)(event, context)
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=run, name=f"lambda-{function.logical_id}", daemon=True)
    worker.start()
    worker.join(function.timeout_seconds)
    if worker.is_alive():
        raise FunctionTimedOut(f"{function.logical_id}: Task timed out after {function.timeout_seconds} seconds")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


def http_event(
    method: str,
    raw_path: str,
    route_path: str,
    path_parameters: dict[str, str],
    headers: dict[str, str],
    raw_query: str = "",
    body: bytes = b"",
) -> dict[str, Any]:
    """An HTTP API payload-2.0 event, as API Gateway builds it.

    API Gateway hands the Lambda a *decoded* path and decoded path parameters; repeated query
    parameters are joined with commas.
    """
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {route_path}",
        "rawPath": unquote(raw_path),
        "rawQueryString": raw_query,
        "headers": lowered,
        "queryStringParameters": query or None,
        "pathParameters": path_parameters or None,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": lowered.get("host", "localhost"),
            "http": {
                "method": method,
                "path": unquote(raw_path),
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{method} {route_path}",
            "stage": "$default",
            "timeEpoch": int(time.time() * 1000),
        },
        "body": text if body else None,
        "isBase64Encoded": encoded,
    }
    return event
