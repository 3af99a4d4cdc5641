"""Items are read as DynamoDB sends them and decoded once, to the same values boto3 would give."""

from __future__ import annotations

import base64
from decimal import Decimal

from boto3.dynamodb.types import Binary, TypeDeserializer
from hypothesis import given
from hypothesis import strategies as st

from meter.core.config import get_settings
from meter.dal import dynamo

names = st.text(min_size=1, max_size=8)
numbers = st.integers(-(10**30), 10**30) | st.decimals(-(10**9), 10**9, places=6, allow_nan=False)
leaves = st.text(max_size=8) | numbers | st.binary(max_size=8) | st.booleans() | st.none()
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3))


def _as_boto3_reads(value):
    """What ``deserialize`` returned when boto3 parsed and decoded items: Decimals as ints or floats."""
    if isinstance(value, Binary):
        return value.value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _as_boto3_reads(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_boto3_reads(v) for v in value]
    return value


def _as_sent(attribute):
    """An attribute value as DynamoDB's JSON carries it: binary values as base64 text."""
    ((kind, raw),) = attribute.items()
    if kind == "B":
        return {"B": base64.b64encode(raw).decode()}
    if kind == "M":
        return {"M": {k: _as_sent(v) for k, v in raw.items()}}
    if kind == "L":
        return {"L": [_as_sent(v) for v in raw]}
    return attribute


@given(st.dictionaries(names, values, min_size=1, max_size=4))
def test_an_item_as_sent_decodes_to_what_boto3_parsing_gave(item):
    wire = dynamo.serialize(item)
    expected = {k: _as_boto3_reads(TypeDeserializer().deserialize(v)) for k, v in wire.items()}
    assert dynamo.deserialize({k: _as_sent(v) for k, v in wire.items()}) == expected


def test_number_sets_and_exponents_decode_as_numbers():
    item = {"n": {"N": "1E+3"}, "f": {"N": "2.50"}, "ns": {"NS": ["1", "2.5"]}, "ss": {"SS": ["a"]}}
    assert dynamo.deserialize(item) == {"n": 1000, "f": 2.5, "ns": {1, 2.5}, "ss": {"a"}}


def test_the_client_leaves_items_as_sent_and_binary_values_round_trip(aws):
    table, blob = get_settings().control_table, bytes(range(256))
    item = {"pk": "decode", "blob": blob, "n": 12, "nested": {"l": [1, "a", blob]}}
    dynamo.client().put_item(TableName=table, Item=dynamo.serialize(item))
    found = dynamo.client().get_item(TableName=table, Key=dynamo.serialize({"pk": "decode"}))["Item"]
    assert found["n"] == {"N": "12"} and found["blob"] == {"B": base64.b64encode(blob).decode()}
    assert dynamo.deserialize(found) == item
    assert list(dynamo.paginate("query", TableName=table, KeyConditionExpression="pk = :p",
                                ExpressionAttributeValues={":p": {"S": "decode"}})) == [item]  # fmt: skip
