"""How distinct-value marks are cut into transactions (DynamoDB takes at most 100 actions)."""

from meter.counting.distinct import _chunks


def test_distinct_marks_are_cut_into_transactions_of_at_most_100_actions_however_many_tenants():
    moves = {(f"t{n}", "I", f"t{n}#I#u"): ("2026-10-31", "2026-11-01") for n in range(120)}  # 2 tally items each
    moves |= {("big", "I", f"big#I#u{n}"): ("", "2026-11-01") for n in range(250)}  # one tally item for all
    chunks = _chunks(moves)
    assert sorted(mark for chunk in chunks for mark in chunk) == sorted(moves)
    for chunk in chunks:
        tallies = {(m[0], day[:7]) for m in chunk for day in moves[m] if day}
        assert len(chunk) + len(tallies) <= 100
