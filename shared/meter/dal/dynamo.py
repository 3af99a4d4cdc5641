"""DynamoDB plumbing: one cached low-level client, and item (de)serialization.

The low-level client keeps cold starts short (no resource model to load). boto3 honours
``AWS_ENDPOINT_URL_DYNAMODB``, which is how tests and the local runner point it elsewhere.

Its responses leave items as the JSON DynamoDB sent: botocore would walk every attribute of every
item through its shape model (most of a large Query's time, boto/boto3#2928), only for
``deserialize`` to walk them again. The one difference is binary values, still base64 text.
Lambda's own botocore runs this; an answer in any protocol other than DynamoDB's JSON is parsed by
botocore as before, and ``deserialize`` reads that form too.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from botocore.config import Config
from botocore.parsers import JSONParser, ResponseParserFactory

from meter.core.caches import memoized

_serializer = TypeSerializer()


class _ItemsAsSent(JSONParser):
    """botocore's JSON parser, except that an attribute map (an item, a key) is kept as sent."""

    def _handle_map(self, shape: Any, value: dict[str, Any]) -> dict[str, Any]:
        if shape.value.name == "AttributeValue":
            return value
        return super()._handle_map(shape, value)


class _Parsers(ResponseParserFactory):
    def create_parser(self, protocol_name: str) -> Any:
        return _ItemsAsSent(**self._defaults) if protocol_name == "json" else super().create_parser(protocol_name)


@memoized(1)
def client() -> Any:
    """The process-wide DynamoDB client (created on first use)."""
    import boto3
    import botocore.session

    session = botocore.session.get_session()
    session.register_component("response_parser_factory", _Parsers())
    return boto3.session.Session(botocore_session=session).client(
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
