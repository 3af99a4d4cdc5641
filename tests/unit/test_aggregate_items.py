"""What the aggregator writes per record: a bounded set of counters per item, whatever the input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from meter.counting.aggregation import coalesce
from meter.dal.dimensions import (
    QUARTER_MS,
    WELL_KNOWN_TYPES,
    contribution_of,
    each_event,
    each_member,
)
from meter.dal.records import UsageRecord

DAY = 1_700_000_000_000 // 86_400_000 * 86_400_000


def _record(n: int, event_type: str) -> UsageRecord:
    return UsageRecord(
        tenant="acme",
        id=f"e{n}",
        type=event_type,
        count=n,
        ts=DAY + n,
        credits=1,
        credits_source="event",
        received_at=DAY + n,
        fingerprint="f",
        relations={"agentId": "bot", "identifier": "ana"},
    )


def test_distinct_event_types_add_items_never_counters_to_an_item():
    """Free-form types once each added a counter to the tenant's, user's and agent's items: a few
    thousand distinct types passed DynamoDB's 400 KB item limit and every later update failed."""
    records = [_record(n, f"tokens.{n:057d}") for n in range(10_000)]
    items = coalesce(records)
    widest = max(len(counters) for counters in items.values())
    names = {name for counters in items.values() for name in counters}
    assert widest <= 8 and len(names) <= 8, sorted(names)[:20]
    tenant_day = next(c for (pk, sk), c in items.items() if pk == "acme#T" and sk.startswith("D#"))
    assert tenant_day["events"] == 10_000 and tenant_day["tokens"] == sum(range(10_000))


event_types = st.one_of(
    st.sampled_from([*sorted(WELL_KNOWN_TYPES), "message", "conversation", "file", "files.pdf", "tokens.cached"]),
    st.from_regex(r"(tokens|log_insights|file|message)?[a-z._]{0,12}", fullmatch=True),
)


@given(event_types, st.integers(0, 10**12), st.integers(-(10**6), 10**9), st.integers(0, 3_600_000 - 1))
def test_a_listed_event_adds_what_its_record_adds(event_type, count, credits, ms):
    """An hour item's set member for an event, read back, adds the same counters as the event."""
    member = each_member(DAY + ms, event_type, count, credits)
    assert member is not None
    assert each_event(member) == (ms % QUARTER_MS, contribution_of(event_type, count, credits))
