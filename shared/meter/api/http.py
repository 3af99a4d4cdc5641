"""The HTTP edge shared by every API handler: auth guard, JSON responses, the error map.

API Gateway has already routed the request to the one function that serves it, so handlers
do not route again: ``api_handler`` checks the caller's scope, runs the use case, and turns
``MeterError``s (and anything unexpected) into JSON responses. This is the only place that
maps errors to HTTP.
"""

from __future__ import annotations

import base64
import functools
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from meter.api.auth import Principal, principal_from_event
from meter.api.ratelimit import enforce_rate_limit
from meter.core import ids
from meter.core.errors import BadRequest, MeterError, PayloadTooLarge
from meter.core.json_body import MAX_BODY_BYTES
from meter.core.logs import logger, metrics

INTERNAL_ERROR = "Internal server error"
MAX_PATH_PARAMETER_BYTES = 512
MAX_QUERY_VALUE_BYTES = 1024  # each value, repeated ones apart: keys built from them stay under DynamoDB's 2 KB


@dataclass(frozen=True)
class Request:
    """What use cases read of an HTTP API (payload 2.0) event.

    Not Powertools' ``Request``: importing its package loads every event class
    it has, ~15 ms of each cold start, for the five fields below.
    """

    event: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        """Headers, names lower-cased as API Gateway delivers them."""
        return {k.lower(): v for k, v in (self.event.get("headers") or {}).items()}

    @property
    def path_parameters(self) -> dict[str, str]:
        return self.event.get("pathParameters") or {}

    @property
    def query_string_parameters(self) -> dict[str, str]:
        return self.event.get("queryStringParameters") or {}

    @property
    def raw_query_string(self) -> str | None:
        """The query string as sent (repeated parameters kept apart)."""
        return self.event.get("rawQueryString")

    @property
    def body(self) -> str:
        return self.event.get("body") or ""

    @property
    def is_base64_encoded(self) -> bool:
        return bool(self.event.get("isBase64Encoded"))


UseCase = Callable[[Request, Principal], Any]
ErrorBody = Callable[[MeterError, dict[str, Any]], dict[str, Any]]
GRADIENT_ERROR_IDS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    413: "too_large",
    429: "too_many_requests",
}


@dataclass(frozen=True)
class RawResponse:
    """A non-JSON success response (CSV, protobuf, or none: a 204)."""

    body: str | bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200

    def lambda_response(self) -> dict[str, Any]:
        """The payload-2.0 response; bytes go base64-encoded, as API Gateway expects binary bodies."""
        headers = {"Content-Type": self.content_type, **self.headers} if self.content_type else dict(self.headers)
        binary = isinstance(self.body, bytes)
        body = base64.b64encode(self.body).decode() if binary else self.body
        return {"statusCode": self.status, "headers": headers, "body": body, "isBase64Encoded": binary}


class Created(dict):
    """A use case's answer that made something new (201); a plain dict answers 200."""


def created_or_ok(body: Any) -> int:
    """201 for a ``Created`` answer, 200 otherwise (the same request again)."""
    return 201 if isinstance(body, Created) else 200


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An HTTP API (payload 2.0) response with a JSON body."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(body, ensure_ascii=False, separators=(",", ":")),
    }


def error_body(error: MeterError, event: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"error": message}`` (AgentsGT, ChatBotKit, ours), with ``details`` for per-field problems
    and the error's own fields (a 402's ``subject`` and ``available``)."""
    body = {"error": error.message, "details": error.details} if error.details else {"error": error.message}
    return {**body, **error.fields}


def gradient_error_body(error: MeterError, event: dict[str, Any]) -> dict[str, Any]:
    """DigitalOcean's error shape: ``{"id", "message", "request_id"}``."""
    request_id = (event.get("requestContext") or {}).get("requestId", "")
    return {
        "id": GRADIENT_ERROR_IDS.get(error.status, "server_error"),
        "message": error.message,
        "request_id": request_id,
    }


def error_response(error: MeterError, event: dict[str, Any] | None = None, shape: ErrorBody = error_body) -> dict:
    """The response of a domain error."""
    if error.status >= 500:
        logger.warning("request failed", extra={"status": error.status, "reason": error.message})
    return json_response(error.status, shape(error, event or {}), error.headers)


def api_handler(
    scope: str, status: Callable[[Any], int] = lambda _: 200, errors: ErrorBody = error_body
) -> Callable[[UseCase], Callable]:
    """Wrap a use case as a Lambda handler behind API Gateway, requiring ``scope``.

    ``status`` picks the success status from the use case's result (e.g. 409 on conflicts);
    ``errors`` shapes error bodies for the API the route belongs to.
    """

    def decorate(use_case: UseCase) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        @functools.wraps(use_case)
        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            try:
                principal = principal_from_event(event, scope)
                logger.thread_safe_append_keys(tenant=principal.tenant)
                enforce_rate_limit(principal)
                request = Request(event)
                _check_sizes(request)
                result = use_case(request, principal)
                if isinstance(result, RawResponse):
                    return result.lambda_response()
                return json_response(status(result), result)
            except MeterError as error:
                return error_response(error, event, errors)
            except Exception:
                logger.exception("unhandled error")
                metrics.add_metric(name="UnhandledErrors", unit="Count", value=1)
                return json_response(500, errors(MeterError(INTERNAL_ERROR), event))

        return handler

    return decorate


def _check_sizes(request: Request) -> None:
    """400 naming the path or query parameter longer than its bound (before any use of it)."""
    for name, value in request.path_parameters.items():
        if len(value.encode()) > MAX_PATH_PARAMETER_BYTES:
            raise BadRequest(f"Invalid '{name}': at most {MAX_PATH_PARAMETER_BYTES} bytes")
    if request.raw_query_string is not None:
        pairs = parse_qsl(request.raw_query_string, keep_blank_values=True)
    else:
        pairs = list(request.query_string_parameters.items())
    for name, value in pairs:
        if len(value.encode()) > MAX_QUERY_VALUE_BYTES:
            raise BadRequest(f"Invalid '{name[:64]}': at most {MAX_QUERY_VALUE_BYTES} bytes")


STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}


def static_file(directory: Path, name: str) -> dict[str, Any]:
    """One file of ``directory`` (never outside it) as an HTTP response; a JSON 404 otherwise."""
    path = directory / name
    if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES or not path.is_file():
        return json_response(404, {"error": "Not Found"})
    binary = not STATIC_TYPES[path.suffix].startswith("text/")
    headers = {
        "Cache-Control": "no-cache" if name == "index.html" else "public, max-age=300",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",  # no other site may frame the dashboard (clickjacking)
        "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "frame-ancestors 'none'",
    }
    body = path.read_bytes() if binary else path.read_text()
    return RawResponse(body, STATIC_TYPES[path.suffix], headers).lambda_response()


def path_parameter(event: Request, name: str) -> str:
    """A path parameter as API Gateway decoded it, in NFC (as ids are stored)."""
    return ids.normal((event.path_parameters or {}).get(name, ""))


def query_parameters(event: Request) -> dict[str, str]:
    """Query parameters in NFC (API Gateway joins repeated ones with commas)."""
    return {name: ids.normal(value) for name, value in (event.query_string_parameters or {}).items()}


def body_bytes(event: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, un-gzipped when ``Content-Encoding: gzip`` says so, at most ``limit`` bytes.

    API Gateway base64-encodes bodies that are not text. A compressed body is inflated only up to
    the limit, so a small gzip bomb costs no more than a large plain body.
    """
    body = event.body or ""
    raw = base64.b64decode(body) if event.is_base64_encoded else body.encode()
    encoding = event.headers.get("content-encoding", "identity").strip().lower()
    if len(raw) > limit:
        raise PayloadTooLarge(f"Request body is {len(raw)} bytes; the limit is {limit}")
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip"):
        raise BadRequest(f"Invalid 'Content-Encoding': {encoding[:32]!r} (send gzip or none)")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(raw, limit + 1)
    except zlib.error:
        raise BadRequest("Invalid 'Content-Encoding': the body is not valid gzip") from None
    if len(inflated) > limit:
        raise PayloadTooLarge(f"Request body inflates past {limit} bytes, the limit")
    if not inflater.eof:
        raise BadRequest("Invalid 'Content-Encoding': the gzip body is cut short")
    return inflated


def content_type(event: Request) -> str:
    """The request's media type, lower-cased, without parameters such as ``charset``."""
    return event.headers.get("content-type", "").split(";")[0].strip().lower()
