"""The one boto3 session every AWS client of a process comes from, so credentials, endpoint data and
the session's set-up load once per container however many services it calls.

Its DynamoDB answers leave items as DynamoDB sent them: botocore would walk every attribute of every
item through its model of the API (most of a large Query's time, boto/boto3#2928), only for
``meter.dal.dynamo.deserialize`` to walk them again. The one difference is binary values, still
base64 text. Lambda's own botocore runs this; an answer in any protocol other than DynamoDB's JSON
is parsed by botocore as before, and ``deserialize`` reads that form too. Only DynamoDB's API has
attribute maps, so other services' answers are parsed as always.
"""

from __future__ import annotations

from typing import Any

from botocore.parsers import JSONParser, ResponseParserFactory

from meter.core.caches import memoized


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
def session() -> Any:
    """The process-wide boto3 session (created on first use)."""
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    core.register_component("response_parser_factory", _Parsers())
    return boto3.session.Session(botocore_session=core)
