"""Helpers shared by tests: calling the gateway like an HTTP client, draining streams."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from local.gateway import Gateway, Response
from local.streams import StreamMapping
from local.template import Stack


def call(
    gateway: Gateway,
    method: str,
    path: str,
    token: str | None = None,
    body: Any = None,
    query: dict[str, str] | None = None,
    raw_body: bytes | None = None,
) -> Response:
    """One request through the in-process gateway, shaped as an HTTP client would send it."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    payload = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else b"")
    return gateway.handle(method, path, urlencode(query or {}), headers, payload)


def identifier_path(identifier: str) -> str:
    """The dates path of an identifier, URL-encoded as the seed's clients do."""
    return f"/api/v1/consumption/identifier/{quote(identifier, safe='')}/dates"


def aggregator(stack: Stack, dead_letters: list[dict[str, Any]] | None = None) -> StreamMapping:
    """The template's stream mapping, delivering to the aggregator in process."""
    source = stack.stream_sources()[0]
    sink = dead_letters.append if dead_letters is not None else (lambda _: None)
    return StreamMapping(
        source, stack.functions()[source.function], stack.physical_name(source.table), sink, retry_delay=0
    )
