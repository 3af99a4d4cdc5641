"""GET /api/v1/consumption/identifier/{identifier}/dates (AgentsGT), exact over any range."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meter.dal import keys, store
from meter.dal.dimensions import IDENTIFIER, ITEMIZED_CAP, each_attribute
from tests.conftest import STACK
from tests.helpers import aggregator, call, calls_made, identifier_path, queries_made

DAY0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=5)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def day(offset: int) -> str:
    return (DAY0 + timedelta(days=offset)).strftime("%Y-%m-%d")


# (identifier, moment, credits): spread over days, hours and minutes.
EVENTS = [
    ("user@example.com", DAY0 + timedelta(hours=1, minutes=10), 1),
    ("user@example.com", DAY0 + timedelta(hours=1, minutes=50), 2),
    ("user@example.com", DAY0 + timedelta(hours=23, minutes=59, seconds=59), 4),
    ("user@example.com", DAY0 + timedelta(days=1, hours=0, minutes=0), 8),
    ("user@example.com", DAY0 + timedelta(days=1, hours=12, minutes=30), 16),
    ("user@example.com", DAY0 + timedelta(days=2, hours=5), 0),
    ("user@example.com", DAY0 + timedelta(days=3, hours=5, minutes=1), 32),
    ("+15551234567", DAY0 + timedelta(hours=3), 5),
    ("José Ünïcødé 名前", DAY0 + timedelta(hours=3), 6),
    ("a/b?c#d%20e", DAY0 + timedelta(hours=3), 7),
]


@pytest.fixture
def api(gateway, tokens):
    batch = [
        {"id": f"e{i}", "type": "message", "count": 1, "credits": credits, "identifier": who, "timestamp": iso(at)}
        for i, (who, at, credits) in enumerate(EVENTS)
    ]
    assert call(gateway, "POST", "/v1/events", tokens["acme"], {"events": batch}).status == 200
    aggregator(STACK).drain()
    return lambda identifier, **query: call(gateway, "GET", identifier_path(identifier), tokens["acme"], query=query)


def expected(identifier: str, start: datetime, end: datetime) -> list[dict]:
    """Recount from the fixture: credits per day of events in [start, end], zero days omitted."""
    totals: dict[str, int] = {}
    for who, at, credits in EVENTS:
        if who == identifier and start <= at <= end and credits:
            key = at.strftime("%Y-%m-%d")
            totals[key] = totals.get(key, 0) + credits
    return [{"date": d, "total_credits": c} for d, c in sorted(totals.items())]


def test_all_time_ascending_without_zero_days(api):
    response = api("user@example.com")
    assert response.status == 200
    assert response.json() == {
        "data": [
            {"date": day(0), "total_credits": 7},
            {"date": day(1), "total_credits": 24},
            {"date": day(3), "total_credits": 32},
        ]
    }


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (timedelta(hours=1, minutes=30), timedelta(days=1, hours=12, minutes=30)),
        (timedelta(hours=1, minutes=10), timedelta(hours=1, minutes=10)),
        (timedelta(hours=1, minutes=11), timedelta(hours=23, minutes=59, seconds=59)),
        (timedelta(hours=0), timedelta(days=4)),
        (timedelta(hours=23, minutes=59, seconds=59, milliseconds=1), timedelta(days=3, hours=5, minutes=1)),
        (timedelta(days=1, hours=0, minutes=0), timedelta(days=1, hours=12, minutes=29, seconds=59)),
        # quarter hours of one hour item, alone and beside a raw slice
        (timedelta(hours=1), timedelta(hours=1, minutes=44, seconds=59, milliseconds=999)),
        (timedelta(hours=1, minutes=15), timedelta(hours=1, minutes=50)),
        (timedelta(hours=1, minutes=45), timedelta(days=1, hours=12, minutes=29, seconds=59, milliseconds=999)),
        (timedelta(hours=1, minutes=11), timedelta(days=3, hours=5, minutes=14, seconds=59, milliseconds=999)),
        # one raw slice across a quarter hour line, the user's event in its second quarter only
        (timedelta(hours=1, minutes=40), timedelta(hours=1, minutes=55)),
    ],
)
def test_ranges_are_exact_at_any_boundary(api, start, end):
    low, high = DAY0 + start, DAY0 + end
    response = api("user@example.com", **{"from": iso(low), "to": iso(high)})
    want = expected("user@example.com", low, high)
    assert (response.status, response.json()) == ((200, {"data": want}) if want else (404, response.json()))


QUARTER, MINUTE = timedelta(minutes=15), timedelta(minutes=1)
near_an_event = st.builds(  # a moment in the quarter hour of one of the user's events, or one of the two before
    lambda at, quarters, minutes, ms: (
        at.replace(minute=at.minute // 15 * 15, second=0)
        + quarters * QUARTER
        + minutes * MINUTE
        + timedelta(milliseconds=ms)
    ),
    st.sampled_from([at for who, at, _ in EVENTS if who == "user@example.com"]),
    st.integers(-2, 0),
    st.integers(0, 14),
    st.integers(0, 59_999),
)
lengths = st.builds(
    lambda minutes, ms: minutes * MINUTE + timedelta(milliseconds=ms),
    st.one_of(st.integers(0, 30), st.integers(0, 2 * 24 * 60)),
    st.integers(0, 59_999),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(low=near_an_event, length=lengths)
def test_any_range_near_the_events_is_exact(api, low, length):
    """Ragged edges in the quarter hours of the user's events and the two before: a quarter with or
    without their events, a raw slice within one quarter or across a quarter line, all settled."""
    high = low + length
    response = api("user@example.com", **{"from": iso(low), "to": iso(high)})
    want = expected("user@example.com", low, high)
    assert (response.status, response.json().get("data")) == ((200, want) if want else (404, None))


def test_bare_dates_cover_whole_days(api):
    response = api("user@example.com", **{"from": day(1), "to": day(1)})
    assert response.json() == {"data": [{"date": day(1), "total_credits": 24}]}


def test_open_ended_ranges(api):
    assert api("user@example.com", **{"from": day(3)}).json() == {"data": [{"date": day(3), "total_credits": 32}]}
    assert api("user@example.com", to=day(0)).json() == {"data": [{"date": day(0), "total_credits": 7}]}


@pytest.mark.parametrize(("who", "credits"), [("+15551234567", 5), ("José Ünïcødé 名前", 6), ("a/b?c#d%20e", 7)])
def test_url_encoded_identifiers(api, who, credits):
    assert api(who).json() == {"data": [{"date": day(0), "total_credits": credits}]}


def test_not_found_bodies(api):
    assert (api("nobody").status, api("nobody").json()) == (
        404,
        {"error": "No consumption data found for this identifier"},
    )
    empty_period = api("user@example.com", **{"from": day(2), "to": day(2)})
    assert empty_period.status == 404


@pytest.mark.parametrize(
    ("query", "param"),
    [({"from": "soon"}, "from"), ({"to": "2024-02-30"}, "to"), ({"from": "2024-02-02", "to": "2024-02-01"}, "from")],
)
def test_bad_dates_are_400_naming_the_parameter(api, query, param):
    response = api("user@example.com", **query)
    assert response.status == 400 and f"'{param}'" in response.json()["error"]


def _queries_of(api, low: datetime, high: datetime) -> list[dict]:
    return queries_made(lambda: api("user@example.com", **{"from": iso(low), "to": iso(high)}))


def test_settled_ragged_edges_are_summed_from_the_hour_items_sets(api):
    """The user's few events in each quarter hour are listed in its hour item: ragged edges in those
    quarters (events before and after ``from``, and at ``to``) read no raw record, to the millisecond."""
    for low, high in [
        (DAY0 + timedelta(hours=1, minutes=12), DAY0 + timedelta(days=3, hours=5, minutes=7)),
        (DAY0 + timedelta(hours=1, minutes=10, milliseconds=1), DAY0 + timedelta(days=3, hours=5, minutes=1)),
    ]:
        queries = _queries_of(api, low, high)
        assert not [q for q in queries if q.get("IndexName")]
        assert len(queries) == 3  # days, head hours, tail hours
        want = expected("user@example.com", low, high)
        assert api("user@example.com", **{"from": iso(low), "to": iso(high)}).json()["data"] == want


def _send_and_count(gateway, tokens, who: str, moments: list[datetime], first: int = 0, credits: int = 1) -> None:
    events = [{"id": f"{who}-{first + n}", "type": "tokens.input", "count": 10, "credits": credits, "identifier": who,
               "timestamp": iso(at)} for n, at in enumerate(moments)]  # fmt: skip
    assert call(gateway, "POST", "/v1/events", tokens["acme"], {"events": events}).status == 200
    aggregator(STACK).drain()


def _credits_by_day(who: str, moments: list[datetime], low: datetime, high: datetime, credits: int = 1) -> list:
    days: dict[str, int] = {}
    for at in (at for at in moments if low <= at <= high):
        days[at.strftime("%Y-%m-%d")] = days.get(at.strftime("%Y-%m-%d"), 0) + credits
    return [{"date": d, "total_credits": c} for d, c in sorted(days.items())]


BUSY_QUARTER = DAY0 + timedelta(days=2, hours=7)


@pytest.mark.parametrize(
    "batches",
    [
        [ITEMIZED_CAP + 1],  # more than a set holds in one commit: none of them listed
        [ITEMIZED_CAP - 2, 4],  # a second commit that would take the set past its cap adds no member
    ],
)
def test_a_quarter_with_more_events_than_its_set_holds_reads_raw_records(gateway, tokens, api, batches):
    who, sent, moments = "busy@example.com", 0, []
    for size in batches:
        batch = [BUSY_QUARTER + timedelta(seconds=37 * (sent + n) + 1) for n in range(size)]
        _send_and_count(gateway, tokens, who, batch, first=sent)
        sent, moments = sent + size, moments + batch
    item = _hour_item(who, BUSY_QUARTER)
    assert (item["events"], each_attribute(0) in item) == (sent, False)  # short: never kept
    low, high = BUSY_QUARTER + timedelta(minutes=2, milliseconds=3), BUSY_QUARTER + timedelta(hours=30)
    raw = [q for q in queries_made(lambda: api(who, **{"from": iso(low), "to": iso(high)})) if q.get("IndexName")]
    assert len(raw) == 1 and _filtered_to(raw[0]) == {"identifier": who}
    assert api(who, **{"from": iso(low), "to": iso(high)}).json()["data"] == _credits_by_day(who, moments, low, high)


def test_a_full_set_takes_no_more_tries(gateway, tokens, api):
    """Once a commit sees a quarter's set full, the next commits write that hour item once, with no
    member and no condition that fails (each failed write would cost a write unit), and the first of
    them removes the set it leaves short (never read, and its bytes would cost every later write)."""
    who = "steady@example.com"
    moments = [BUSY_QUARTER + timedelta(seconds=5 * n + 1) for n in range(ITEMIZED_CAP + 2)]
    _send_and_count(gateway, tokens, who, moments[:ITEMIZED_CAP])
    hour_key = store.Aggregates.key(IDENTIFIER.pk("acme", who), keys.hour_sk(keys.hour_key(_ms(BUSY_QUARTER))))
    for n, at in enumerate(moments[ITEMIZED_CAP:], start=ITEMIZED_CAP):
        writes = calls_made("update_item", lambda at=at, n=n: _send_and_count(gateway, tokens, who, [at], first=n))
        assert [w["failed"] for w in writes if w["Key"] == hour_key] == [False]
        item = _hour_item(who, BUSY_QUARTER)
        assert (item["events"], each_attribute(0) in item) == (n + 1, False)


def test_identical_events_in_a_quarter_read_raw_records(gateway, tokens, api):
    """Two events alike in every listed field are one set member: the set is short, so not used."""
    who, at = "twins@example.com", BUSY_QUARTER + timedelta(minutes=5)
    _send_and_count(gateway, tokens, who, [at, at, at + timedelta(minutes=1)], credits=2)
    assert len(_hour_item(who, at)[each_attribute(0)]) == 2
    low, high = at - timedelta(milliseconds=1), at + timedelta(days=1)
    raw = [q for q in queries_made(lambda: api(who, **{"from": iso(low), "to": iso(high)})) if q.get("IndexName")]
    assert len(raw) == 1
    assert api(who, **{"from": iso(low), "to": iso(high)}).json()["data"] == [
        {"date": at.strftime("%Y-%m-%d"), "total_credits": 6}
    ]


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _hour_item(who: str, at: datetime) -> dict:
    key = store.Aggregates.key(IDENTIFIER.pk("acme", who), keys.hour_sk(keys.hour_key(_ms(at))))
    item = store.aggregates().get(key)
    assert item is not None
    return item


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (timedelta(hours=1, minutes=37), timedelta(days=3, hours=5, minutes=22)),  # quarters without the user
        (timedelta(days=1, hours=12, minutes=50), timedelta(days=3, hours=5, minutes=20)),  # an hour not otherwise read
    ],
)
def test_settled_edges_in_quarters_without_the_users_events_read_no_raw_records(api, start, end):
    low, high = DAY0 + start, DAY0 + end
    assert not [q for q in _queries_of(api, low, high) if q.get("IndexName")]
    assert api("user@example.com", **{"from": iso(low), "to": iso(high)}).json()["data"] == expected(
        "user@example.com", low, high
    )


def test_a_late_event_in_a_settled_quarter_counts_once_aggregated(gateway, tokens, api):
    """Like one in a whole quarter hour: a ragged edge in a quarter the aggregates hold nothing of
    the user in reads no raw records, so a late event there counts from its aggregation on."""
    low, high = DAY0 + timedelta(hours=1, minutes=37), DAY0 + timedelta(hours=23)
    late = {"id": "late", "type": "message", "count": 1, "credits": 64, "identifier": "user@example.com",
            "timestamp": iso(DAY0 + timedelta(hours=1, minutes=40))}  # fmt: skip
    assert call(gateway, "POST", "/v1/events", tokens["acme"], {"events": [late]}).status == 200
    query = {"from": iso(low), "to": iso(high)}
    assert api("user@example.com", **query).json()["data"] == [{"date": day(0), "total_credits": 2}]
    aggregator(STACK).drain()
    assert api("user@example.com", **query).json()["data"] == [{"date": day(0), "total_credits": 66}]


def test_a_recent_edge_reads_raw_records_before_aggregation(gateway, tokens, api):
    """A ``from`` in a quarter hour not yet ``SETTLED_MS`` over still reads the tenant's records there:
    an event sent a moment ago counts before the aggregator has run."""
    now = datetime.now(UTC)
    sent = {"id": "now", "type": "message", "count": 1, "credits": 3, "identifier": "fresh@example.com",
            "timestamp": iso(now - timedelta(seconds=1))}  # fmt: skip
    assert call(gateway, "POST", "/v1/events", tokens["acme"], {"events": [sent]}).status == 200
    response = api("fresh@example.com", **{"from": iso(now - timedelta(seconds=2)), "to": iso(now)})
    assert response.json()["data"] == [{"date": now.strftime("%Y-%m-%d"), "total_credits": 3}]


def test_edges_on_quarter_hours_read_no_raw_records(api):
    to = DAY0 + timedelta(days=3, hours=5, minutes=44, seconds=59, milliseconds=999)  # inclusive: up to 05:45
    queries = _queries_of(api, DAY0 + timedelta(hours=1, minutes=30), to)
    assert not [q for q in queries if q.get("IndexName")]
    assert len(queries) == 3  # days, head hours, tail hours


def test_a_day_less_its_other_hours_reads_only_those_hours(api):
    low = DAY0 + timedelta(hours=1, minutes=37)  # 23 hours after it: its day less hours 00 and 01
    high = DAY0 + timedelta(days=1, hours=22, minutes=22)  # 22 hours before it: its day less 22 and 23
    hours = sorted(_between(q) for q in _queries_of(api, low, high) if not q.get("IndexName") and "H#" in str(q))
    assert hours == [(f"H#{day(0)}T00", f"H#{day(0)}T01"), (f"H#{day(1)}T22", f"H#{day(1)}T23")]
    assert api("user@example.com", **{"from": iso(low), "to": iso(high)}).json()["data"] == expected(
        "user@example.com", low, high
    )


def test_an_event_outside_the_range_not_yet_counted_moves_no_answer(gateway, tokens, api):
    """A late event in the quarter hour before a ragged ``from``, stored but not yet aggregated: the
    platform route and the usage query (both reading ``from``'s day as its day item less the hours
    before) answer what the aggregates hold, never less."""
    low, high = DAY0 + timedelta(hours=1, minutes=37), DAY0 + timedelta(days=1, hours=12)
    late = {"id": "late", "type": "message", "count": 1, "credits": 64, "identifier": "user@example.com",
            "timestamp": iso(DAY0 + timedelta(hours=1, minutes=32))}  # fmt: skip
    assert call(gateway, "POST", "/v1/events", tokens["acme"], {"events": [late]}).status == 200
    want = expected("user@example.com", low, high)
    assert api("user@example.com", **{"from": iso(low), "to": iso(high)}).json()["data"] == want
    query = {"identifier": "user@example.com", "from": iso(low), "to": iso(high), "windowSize": "DAY"}
    rows = call(gateway, "GET", "/v1/usage/query", tokens["acme"], query=query).json()["data"]
    assert [row["value"] for row in rows] == [day["total_credits"] for day in want] == [6, 8]


def _between(query: dict) -> tuple[str, str]:
    """The bounds of a Query's ``BETWEEN`` on its sort key, as sent."""
    low, high = re.search(r"BETWEEN (:\w+) AND (:\w+)", query["KeyConditionExpression"]).groups()
    values = query["ExpressionAttributeValues"]
    return values[low]["S"], values[high]["S"]


def _filtered_to(query: dict) -> dict[str, str]:
    """The attribute = value pairs of a Query's filter, as sent."""
    names, values = query["ExpressionAttributeNames"], query["ExpressionAttributeValues"]
    return {
        names[name]: values[value]["S"] for name, value in re.findall(r"(#\w+) = (:\w+)", query["FilterExpression"])
    }
