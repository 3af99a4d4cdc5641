"""Event validation: all-or-nothing, every problem named by index, id and field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from meter.core.errors import BadRequest, PayloadTooLarge
from meter.core.timerange import to_ms
from meter.dal.tenants import credits_for
from meter.ingest.batch import MAX_BATCH_EVENTS, parse_events

NOW = to_ms(datetime(2026, 6, 1, 12, tzinfo=UTC))
GOOD = {"id": "e1", "type": "tokens.input", "count": 3}


def problems(body) -> list[dict]:
    with pytest.raises(BadRequest) as refused:
        parse_events(json.dumps(body), now=NOW)
    return refused.value.details


def test_a_single_event_and_a_batch_both_parse():
    assert [e.id for e in parse_events(json.dumps(GOOD), now=NOW)] == ["e1"]
    batch = {"events": [GOOD, {**GOOD, "id": "e2"}]}
    assert [e.id for e in parse_events(json.dumps(batch), now=NOW)] == ["e1", "e2"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tenant": "globex"}, "tenant"),
        ({"count": -1}, "count"),
        ({"count": 1.5}, "count"),
        ({"count": "3"}, "count"),
        ({"count": True}, "count"),
        ({"id": ""}, "id"),
        ({"id": "x" * 129}, "id"),
        ({"type": ""}, "type"),
        ({"type": "has space"}, "type"),
        ({"credits": -2}, "credits"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": "2026-06-01T12:00:00"}, "timestamp"),
        ({"identifier": ""}, "identifier"),
        ({"agentId": 7}, "agentId"),
        ({"meta": {"k": {"nested": 1}}}, "meta.k"),
        ({"meta": {"k": 1.1e257}}, "meta.k"),  # beyond DynamoDB's numbers: found by schemathesis as a 500
        ({"meta": {"k": 1e-200}}, "meta.k"),
        ({"meta": {"k": 10**20}}, "meta.k"),  # would lose precision as a float
        ({"meta": {f"k{i}": i for i in range(17)}}, "meta"),
    ],
)
def test_each_bad_field_is_named(change, field):
    found = problems({"events": [GOOD, {**GOOD, "id": "bad", **change}]})
    assert found and all(p["index"] == 1 for p in found)
    assert any(p["field"] == field or p["field"].startswith(field) for p in found), found


def test_missing_required_fields_are_each_listed():
    found = problems({"id": "only-id"})
    assert {p["field"] for p in found} == {"type", "count"}
    assert found[0]["id"] == "only-id"


@pytest.mark.parametrize(
    ("offset", "reason"),
    [(timedelta(days=-36), "older than 35 days"), (timedelta(minutes=6), "seconds in the future")],
)
def test_timestamps_outside_the_window_are_rejected(offset, reason):
    moment = datetime(2026, 6, 1, 12, tzinfo=UTC) + offset
    found = problems({**GOOD, "timestamp": moment.isoformat()})
    assert found[0]["field"] == "timestamp" and reason in found[0]["reason"]


def test_the_message_summarizes_and_says_nothing_was_stored():
    with pytest.raises(BadRequest) as refused:
        parse_events(json.dumps({"events": [GOOD, {"id": "x"}, {"id": "y", "type": "t", "count": -1}]}), now=NOW)
    assert "2 of 3 events are invalid" in refused.value.message
    assert "nothing was stored" in refused.value.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "not valid JSON"),
        ("", "empty"),
        ("[1, 2]", "event object"),
        ('{"events": []}', "non-empty array"),
        ('{"events": {}}', "non-empty array"),
        ('{"events": [], "tenant": "x"}', "Unknown field 'tenant'"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ],
)
def test_malformed_bodies_are_400(body, message):
    with pytest.raises(BadRequest, match=message):
        parse_events(body, now=NOW)


def test_invalid_utf8_is_400():
    with pytest.raises(BadRequest, match="UTF-8"):
        parse_events(b'{"id": "\xff"}', now=NOW)


def test_batches_over_the_limits_are_413():
    with pytest.raises(PayloadTooLarge, match=str(MAX_BATCH_EVENTS)):
        parse_events(json.dumps({"events": [GOOD] * (MAX_BATCH_EVENTS + 1)}), now=NOW)
    with pytest.raises(PayloadTooLarge, match="bytes"):
        parse_events(json.dumps({**GOOD, "meta": {"k": "x" * 1_000_001}}), now=NOW)


def test_fingerprint_ignores_defaults_but_not_values():
    (plain,) = parse_events(json.dumps(GOOD), now=NOW)
    (again,) = parse_events(json.dumps(dict(reversed(list(GOOD.items())))), now=NOW)
    (other,) = parse_events(json.dumps({**GOOD, "count": 4}), now=NOW)
    assert plain.fingerprint() == again.fingerprint() != other.fingerprint()


@pytest.mark.parametrize(
    ("event_type", "count", "explicit", "expected"),
    [
        ("tokens.input", 1000, 3, (3, "event")),
        ("tokens.input", 1000, None, (2, "rate_card")),
        ("tokens.input", 1001, None, (3, "rate_card")),  # 2.002 rounds up
        ("tokens.input", 0, None, (0, "rate_card")),
        ("message", 5, None, (0, "none")),
    ],
)
def test_credits_rule(event_type, count, explicit, expected):
    from decimal import Decimal

    assert credits_for(event_type, count, explicit, {"tokens.input": Decimal("0.002")}) == expected


def test_unpaired_surrogate_escapes_are_refused_as_invalid_unicode():
    body = json.dumps({**GOOD, "id": "\ud800"}, ensure_ascii=True)
    with pytest.raises(BadRequest, match="Unicode"):
        parse_events(body, now=NOW)
