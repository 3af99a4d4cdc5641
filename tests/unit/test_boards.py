"""Board items (meter.dal.boards): what a commit writes sums, period by period, to what its records add."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from meter.dal import boards, keys
from meter.reading.agents import _eras

values = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=12)


cuts = st.one_of(st.none(), st.integers(1, 95))


@given(entries=st.dictionaries(st.tuples(cuts, values), st.integers(1, 10**6), max_size=60), limit=st.integers(1, 7))
def test_spreading_keeps_every_entry_once_and_no_write_adds_more_than_the_limit(entries, limit):
    boards.MAX_ENTRIES, kept = limit, boards.MAX_ENTRIES
    try:
        pk, sk = keys.board_pk("acme", "I"), keys.board_sk("D#2026-11-05", "07")
        added = Counter({boards.entry_name(value, cut): n for (cut, value), n in entries.items()}) + Counter(events=3)
        other = (keys.aggregate_pk("acme", "I", "x"), "D#2026-11-05")
        written = boards.spread({(pk, sk): added, other: Counter({f"={n}": 1 for n in range(limit + 1)})})
        assert written[other] == Counter({f"={n}": 1 for n in range(limit + 1)})  # only boards spread
        items = [dict(c, sk=key[1]) for key, c in written.items() if key[0] == pk]
        assert all(sum(boards.ENTRY_MARK in name for name in item) <= limit for item in items)
        total = boards.summed(items)["D#2026-11-05"]
        assert total.events == 3
        assert total.credits == Counter({v: n for (cut, v), n in entries.items() if cut is None})
        assert {c: +t for c, t in total.after.items() if +t} == {
            cut: Counter({v: n for (c, v), n in entries.items() if c == cut}) for cut, _ in entries if cut is not None
        }
        assert boards.spread({(pk, sk): added}) == boards.spread({(pk, sk): added})  # a retry writes the same items
    finally:
        boards.MAX_ENTRIES = kept


@given(value=values, cut=st.one_of(st.none(), st.integers(0, 95)))
def test_an_entry_names_its_value_and_cut_whatever_the_value_holds(value, cut):
    assert boards.parse_entry(boards.entry_name(value, cut)) == (cut, value)
    assert boards.parse_entry("events") is None and boards.parse_entry(">74") is None


HOUR_MS = 3_600_000


@given(first=st.integers(0, 10**6), hours=st.integers(1, 200), at=st.one_of(st.none(), st.integers(0, 10**6 * HOUR_MS)))
def test_a_range_splits_once_into_boarded_hours_the_hour_holding_the_rosters_start_and_rostered_hours(first, hours, at):
    low, high = first * HOUR_MS, (first + hours) * HOUR_MS
    before, holding, after = parts = _eras(low, high, at)
    spans = [span for span in parts if span]
    assert spans[0][0] == low and spans[-1][1] == high  # the whole range, in order, each instant once
    assert all(a[1] == b[0] for a, b in pairwise(spans)) and all(a < b for a, b in spans)
    assert before is None or at is None or before[1] <= at  # boards hold only events before the start
    assert after is None or after[0] >= at  # the roster only events from it on
    assert holding is None or (holding[0] < at < holding[1] and holding[1] - holding[0] == HOUR_MS)
