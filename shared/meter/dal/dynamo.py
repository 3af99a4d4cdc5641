"""DynamoDB plumbing: one cached low-level client, and item (de)serialization.

The low-level client keeps cold starts short (no resource model to load). boto3 honours
``AWS_ENDPOINT_URL_DYNAMODB``, which is how tests and the local runner point it elsewhere.

Its answers leave items as DynamoDB sent them (``meter.dal.aws``), and ``deserialize`` decodes
each once.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from botocore.config import Config

from meter.core.caches import memoized
from meter.dal import aws

_serializer = TypeSerializer()


@memoized(1)
def client() -> Any:
    """The process-wide DynamoDB client (created on first use)."""
    return aws.session().client(
        "dynamodb",
        # DynamoDB validates every request itself; botocore's client-side pass over large
        # transactions costs the aggregator CPU for nothing.
        # 32 connections: the aggregator writes a commit's items 16 at a time, beside other threads.
        config=Config(
            retries={"mode": "standard", "max_attempts": 5},
            tcp_keepalive=True,
            parameter_validation=False,
            max_pool_connections=32,
        ),
    )


def reset_client() -> None:
    """Forget the cached client (tests that switch endpoints or mocks call this)."""
    client.cache_clear()


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_dynamo(v) for v in value]
    return value


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        value = Decimal(text)
        return int(value) if value == value.to_integral_value() else float(value)


def _binary(value: str | bytes) -> bytes:
    return base64.b64decode(value) if isinstance(value, str) else bytes(value)


def _plain(value: dict[str, Any]) -> Any:
    """One attribute value as sent (``{"N": "12"}``) as a plain Python value."""
    ((kind, raw),) = value.items()
    if kind == "S" or kind == "BOOL":
        return raw
    if kind == "N":
        return _number(raw)
    if kind == "M":
        return {k: _plain(v) for k, v in raw.items()}
    if kind == "L":
        return [_plain(v) for v in raw]
    if kind == "B":
        return _binary(raw)
    if kind == "NULL":
        return None
    if kind == "SS":
        return set(raw)
    if kind == "NS":
        return {_number(n) for n in raw}
    if kind == "BS":
        return {_binary(b) for b in raw}
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    """A plain dict (ints, floats, strings, maps) as a DynamoDB attribute map; ``None`` dropped."""
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in item.items() if v is not None}


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB attribute map as a plain dict with ints and floats instead of Decimals, bytes for
    binary values (base64 text, as sent, or bytes)."""
    return {k: _plain(v) for k, v in item.items()}


def paginate(operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item of a Query or Scan, page after page (boto3's paginator), deserialized, lazily."""
    for page in client().get_paginator(operation).paginate(**kwargs):
        yield from (deserialize(item) for item in page.get("Items", []))
