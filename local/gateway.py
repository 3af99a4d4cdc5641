"""API Gateway (HTTP API) emulation: routing and payload 2.0.

Behaves as the deployed HTTP API does for what clients can see: unknown path → 404, known
path with another method → 405, a handler crash → 500; all with JSON bodies. The API has no
authorizer (handlers authenticate), so every matched request reaches its function.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from local.eventbridge import PATH as EVENTS_PATH
from local.eventbridge import EventRecorder
from local.lambda_runtime import http_event, invoke
from local.template import ROOT, Stack
from meter.core.logs import logger


@dataclass
class Response:
    """What the gateway answers: status, headers and body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _json(status: int, body: Any) -> Response:
    return Response(status, {"Content-Type": "application/json"}, json.dumps(body).encode())


DOC_PATHS = ("/openapi.json", "/docs")
SWAGGER_ASSETS = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript"}


def documentation(path: str, headers: dict[str, str]) -> Response:
    """The local stack's extras: the OpenAPI document and Swagger UI (no key needed)."""
    from local.openapi import SWAGGER_UI, document

    if path == "/openapi.json":
        host = {k.lower(): v for k, v in headers.items()}.get("host", "127.0.0.1")
        return _json(200, document(f"http://{host}"))
    if path == "/docs":
        return Response(200, {"Content-Type": "text/html; charset=utf-8"}, SWAGGER_UI.encode())
    asset = path.removeprefix("/docs/")
    if asset not in SWAGGER_ASSETS:
        return _json(404, {"message": "Not Found"})
    body = (ROOT / "node_modules" / "swagger-ui-dist" / asset).read_bytes()
    return Response(200, {"Content-Type": SWAGGER_ASSETS[asset]}, body)


class Gateway:
    """Serves every HttpApi route of the template through its functions."""

    def __init__(self, stack: Stack, events: EventRecorder | None = None):
        self.stack = stack
        self.events = events
        self.functions = stack.functions()
        self.routes = stack.routes()
        # One "container" per function: Lambda never runs two requests in one process at once.
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)

    def _match(self, method: str, raw_path: str) -> tuple[Any, dict[str, str]] | Response:
        path_matches = [(r, m) for r in self.routes if (m := r.pattern.match(raw_path))]
        if not path_matches:
            return _json(404, {"message": "Not Found"})
        for route, match in path_matches:
            if route.method in (method, "ANY"):
                return route, {k: unquote(v) for k, v in match.groupdict().items()}
        return _json(405, {"message": "Method Not Allowed"})

    def _call(self, function: str, event: dict[str, Any]) -> Any:
        try:
            with self._locks[function]:
                return invoke(self.functions[function], event)
        except Exception:
            logger.exception("function failed", extra={"function": function})
            return _json(500, {"message": "Internal Server Error"})

    def handle(
        self, method: str, raw_path: str, raw_query: str, headers: dict[str, str], body: bytes = b""
    ) -> Response:
        """Answer one HTTP request."""
        if method.upper() == "GET" and (raw_path in DOC_PATHS or raw_path.startswith("/docs/")):
            return documentation(raw_path, headers)
        if self.events is not None and raw_path.rstrip("/") == EVENTS_PATH:
            return _json(200, self.events.put_events(body) if method.upper() == "POST" else self.events.recorded())
        found = self._match(method.upper(), raw_path)
        if isinstance(found, Response):
            return found
        route, params = found
        event = http_event(method.upper(), raw_path, route.path, params, headers, raw_query, body)
        result = self._call(route.function, event)
        return result if isinstance(result, Response) else self._to_response(result)

    @staticmethod
    def _to_response(result: Any) -> Response:
        if not isinstance(result, dict) or "statusCode" not in result:
            return _json(200, result)
        body = result.get("body") or ""
        raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
        return Response(int(result["statusCode"]), dict(result.get("headers") or {}), raw)
