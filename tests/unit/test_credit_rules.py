"""The burn-down, against a brute-force oracle: allowances in any zone (DST, :30 and :45 offsets),
priorities, expiries, voids, and overage; and the calendar cases written out."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from meter.core.timerange import HOUR_MS, to_ms
from meter.credits.rules import balance, instance_at, segment_start
from meter.dal.models import TENANT_SUBJECT, CreditAccount, GrantTerms
from tests.credits_oracle import period_bounds, recount

ZONES = ["UTC", "Asia/Kolkata", "Asia/Kathmandu", "America/New_York", "America/St_Johns", "Australia/Adelaide"]
BASE = to_ms(datetime(2026, 2, 20, tzinfo=UTC))  # a span holding the March and April DST changes


def local(zone: str, *fields: int) -> int:
    return to_ms(datetime(*fields, tzinfo=ZoneInfo(zone)))


def counted(grants: list[GrantTerms], uses: list[tuple[int, int]]) -> CreditAccount:
    """The account the aggregator would hold: each use added to the segment of its time."""
    consumed: dict[int, int] = defaultdict(int)
    for at, credits in uses:
        consumed[segment_start(grants, at)] += credits
    return CreditAccount("acme", TENANT_SUBJECT, grants=tuple(grants), consumed=dict(consumed))


def daily(zone: str, amount: int = 100, **fields) -> GrantTerms:
    return GrantTerms(
        "allowance", amount, 100, fields.pop("effective_at", BASE), period="day", time_zone=zone, **fields
    )


def test_a_daily_allowance_in_kolkata_charges_2350_to_its_day_and_0010_to_the_next():
    grant = daily("Asia/Kolkata", amount=50)
    late, early = local("Asia/Kolkata", 2026, 3, 10, 23, 50), local("Asia/Kolkata", 2026, 3, 11, 0, 10)
    assert instance_at(grant, late).start == local("Asia/Kolkata", 2026, 3, 10)
    assert instance_at(grant, early).start == local("Asia/Kolkata", 2026, 3, 11)
    account = counted([grant], [(late, 40), (early, 30)])
    assert balance(account, late + 60_000).consumed == 40  # still the 10th, local
    assert balance(account, early + 60_000).consumed == 30  # the 11th started afresh
    assert balance(account, early + 60_000).overage == 0


def test_new_york_dst_days_hold_23_and_25_hours():
    grant = daily("America/New_York")
    spring, autumn = local("America/New_York", 2026, 3, 8, 12), local("America/New_York", 2026, 11, 1, 12)
    assert (lambda i: i.end - i.start)(instance_at(grant, spring)) == 23 * HOUR_MS
    assert (lambda i: i.end - i.start)(instance_at(grant, autumn)) == 25 * HOUR_MS


def test_a_monthly_allowance_in_kathmandu_resets_at_its_local_midnight():
    grant = GrantTerms("monthly", 1000, 100, BASE, period="month", time_zone="Asia/Kathmandu")
    midnight = local("Asia/Kathmandu", 2026, 3, 1)  # 2026-02-28T18:15Z
    assert midnight == to_ms(datetime(2026, 2, 28, 18, 15, tzinfo=UTC))
    account = counted([grant], [(midnight - 1, 900), (midnight, 100)])
    assert balance(account, midnight - 1).grants[0].remaining == 100
    assert balance(account, midnight).grants[0].remaining == 900


def test_priority_then_expiry_then_start_orders_the_burn_and_a_void_keeps_what_was_covered():
    soon = GrantTerms("soon", 100, 100, BASE, expires_at=BASE + 10 * HOUR_MS)
    never = GrantTerms("never", 100, 100, BASE)
    first = GrantTerms("first", 50, 10, BASE + HOUR_MS)
    uses = [(BASE + 2 * HOUR_MS, 120)]  # first (priority 10) takes 50, then soon (earlier expiry) 70
    shown = {
        s.instance.terms.id: s.remaining
        for s in balance(counted([soon, never, first], uses), BASE + 3 * HOUR_MS).grants
    }
    assert shown == {"first": 0, "soon": 30, "never": 100}
    voided = GrantTerms("soon", 100, 100, BASE, expires_at=BASE + 10 * HOUR_MS, voided_at=BASE + 3 * HOUR_MS)
    later = balance(counted([voided, never, first], [*uses, (BASE + 4 * HOUR_MS, 10)]), BASE + 5 * HOUR_MS)
    assert later.granted == 150 and later.consumed == 60 and later.overage == 0  # first 50 + never 10


grant_strategy = st.builds(
    lambda n, amount, priority, start_h, length_h, void_h, period, zone: GrantTerms(
        f"g{n}",
        amount,
        priority,
        BASE + start_h * HOUR_MS,
        None if length_h is None else BASE + (start_h + length_h) * HOUR_MS,
        None if void_h is None else BASE + (start_h + void_h) * HOUR_MS + 1,
        period,
        zone if period else None,
    ),
    n=st.integers(0, 10**6),
    amount=st.integers(1, 300),
    priority=st.sampled_from([1, 50, 100, 100, 255]),
    start_h=st.integers(0, 24 * 60),
    length_h=st.none() | st.integers(1, 24 * 40),
    void_h=st.none() | st.integers(0, 24 * 40),
    period=st.sampled_from([None, "day", "week", "month"]),
    zone=st.sampled_from(ZONES),
)


def boundaries(grants: list[GrantTerms], at: int) -> list[int]:
    """Every grant boundary at or before ``at`` (starts, ends, voids, the local period start)."""
    found = [b for g in grants for b in (g.effective_at, g.expires_at, g.voided_at) if b is not None]
    found += [period_bounds(g.period, g.time_zone, at)[0] for g in grants if g.period]
    return [b for b in found if b <= at]


@settings(max_examples=300, deadline=None)
@given(
    grants=st.lists(grant_strategy, min_size=1, max_size=6, unique_by=lambda g: g.id),
    uses=st.lists(st.tuples(st.integers(0, 24 * 70 * 60), st.booleans(), st.integers(1, 200)), max_size=40),
    now_minutes=st.integers(0, 24 * 70 * 60),
)
def test_the_balance_equals_a_brute_force_recount_in_any_zone(grants, uses, now_minutes):
    now = BASE + now_minutes * 60_000
    times = [(BASE + minute * 60_000 + 7, on_boundary, credits) for minute, on_boundary, credits in uses]
    # some uses fall exactly on a boundary: the instant a grant starts, ends, or a period turns
    uses = [(max(boundaries(grants, at), default=at) if edge else at, c) for at, edge, c in times if at <= now]
    found, expected = balance(counted(grants, uses), now), recount(grants, uses, now)
    assert (found.granted, found.consumed, found.overage) == (expected.granted, expected.consumed, expected.overage)
    assert {s.instance.terms.id: s.remaining for s in found.grants} == expected.remaining


def test_a_grant_covers_the_instant_it_starts_and_not_the_instant_it_ends():
    grant = GrantTerms("pack", 100, 100, BASE + HOUR_MS, expires_at=BASE + 2 * HOUR_MS)
    uses = [(BASE + HOUR_MS, 30), (BASE + 2 * HOUR_MS, 20)]
    assert counted([grant], uses).consumed == {BASE + HOUR_MS: 30, BASE + 2 * HOUR_MS: 20}
    at_end = balance(counted([grant], uses), BASE + 2 * HOUR_MS)
    assert (at_end.granted, at_end.overage) == (0, 20)  # the pack ended; what it did not cover is overage
    assert recount([grant], uses, BASE + 2 * HOUR_MS).overage == 20
