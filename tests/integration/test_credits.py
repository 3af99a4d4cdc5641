"""Credits through the API (moto): grants made once, balances that equal the native query,
reservations that hold on every subject or none, settled by counted events exactly once,
released and expired; every bad field named; no tenant sees another's."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from meter.core.timerange import iso, now_ms
from tests.conftest import STACK
from tests.helpers import aggregator, call

USER = {"identifier": "ana@example.com"}


def grant(gateway, token, status: int = 201, **fields) -> dict:
    response = call(gateway, "POST", "/v1/grants", token, {"id": "pack", "amount": 1000, **fields})
    assert response.status == status, response.json()
    return response.json()


def balance(gateway, token, **subject) -> dict:
    response = call(gateway, "GET", "/v1/balance", token, query=subject)
    assert response.status == 200, response.json()
    return response.json()


def reserve(gateway, token, rid: str, credits: int, *subjects: dict, ttl: int = 300):
    body = {"id": rid, "subjects": list(subjects) or [{}], "credits": credits, "ttlSeconds": ttl}
    return call(gateway, "POST", "/v1/reservations", token, body)


def use(gateway, token, event_id: str, credits: int, **fields) -> None:
    body = {"id": event_id, "type": "message", "count": 1, "credits": credits, **fields}
    response = call(gateway, "POST", "/v1/events", token, body)
    assert response.status == 200, response.json()


def counted() -> None:
    aggregator(STACK).drain()


# -- grants ------------------------------------------------------------------------------------
def test_a_grant_is_made_once_by_its_id_and_another_body_under_it_is_a_conflict(gateway, tokens):
    made = grant(gateway, tokens["acme"], subject=USER, priority=5, meta={"order": "o-1"})
    assert (made["id"], made["remaining"], made["priority"], made["subject"]) == ("pack", 1000, 5, USER)
    again = grant(gateway, tokens["acme"], status=200, subject=USER, priority=5, meta={"order": "o-1"})
    assert again == made
    clash = call(gateway, "POST", "/v1/grants", tokens["acme"], {"id": "pack", "amount": 999, "subject": USER})
    assert clash.status == 409 and "pack" in clash.json()["error"]
    assert call(gateway, "GET", "/v1/grants/pack", tokens["acme"]).json() == made
    soon = iso(now_ms() + 1500)
    grant(gateway, tokens["acme"], id="short", amount=5, expiresAt=soon, subject={"agentId": "bot"})
    time.sleep(1.6)  # a replay after its expiresAt passed is still the same grant, not a 400
    again = grant(gateway, tokens["acme"], status=200, id="short", amount=5, expiresAt=soon, subject={"agentId": "bot"})
    assert again["id"] == "short"
    listed = call(gateway, "GET", "/v1/grants", tokens["acme"], query=USER).json()
    assert listed == {"data": [made], "cursor": None}
    assert call(gateway, "GET", "/v1/grants", tokens["acme"]).json()["data"] == []  # the tenant's own: none


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"priority": 256}, "priority"),
        ({"subject": {"identifier": "a", "agentId": "b"}}, "subject"),
        ({"effectiveAt": "2020-01-01T00:00:00Z"}, "effectiveAt"),
        ({"expiresAt": "2020-01-01T00:00:00Z"}, "expiresAt"),
        ({"effectiveAt": "2030-01-02T00:00:00Z", "expiresAt": "2030-01-01T00:00:00Z"}, "expiresAt"),
        ({"recurrence": {"period": "year"}}, "recurrence.period"),
        ({"recurrence": {"period": "day", "timeZone": "Mars/Olympus"}}, "recurrence.timeZone"),
        ({"meta": {f"k{n}": n for n in range(17)}}, "meta"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_grant_field_is_named_and_nothing_is_stored(gateway, tokens, body, field):
    response = call(gateway, "POST", "/v1/grants", tokens["acme"], {"id": "g", "amount": 10, **body})
    assert response.status == 400, response.json()
    assert f"'{field}'" in response.json()["error"]
    assert call(gateway, "GET", "/v1/grants/g", tokens["acme"]).status == 404


def test_only_admin_keys_make_grants_and_read_keys_see_them(gateway, tokens):
    assert call(gateway, "POST", "/v1/grants", tokens["acme_read"], {"id": "g", "amount": 1}).status == 403
    grant(gateway, tokens["acme"])
    assert call(gateway, "GET", "/v1/grants/pack", tokens["acme_read"]).status == 200
    assert call(gateway, "DELETE", "/v1/grants/pack", tokens["acme_read"]).status == 403
    assert (
        call(
            gateway, "POST", "/v1/reservations", tokens["acme_read"], {"id": "r", "subjects": [{}], "credits": 1}
        ).status
        == 403
    )


def test_no_tenant_sees_or_spends_another_tenants_credits(gateway, tokens):
    grant(gateway, tokens["acme"])
    assert call(gateway, "GET", "/v1/grants/pack", tokens["globex"]).status == 404
    assert call(gateway, "DELETE", "/v1/grants/pack", tokens["globex"]).status == 404
    assert balance(gateway, tokens["globex"])["available"] == 0
    assert reserve(gateway, tokens["globex"], "r1", 1).status == 402
    assert reserve(gateway, tokens["acme"], "r1", 1).status == 201
    assert call(gateway, "GET", "/v1/reservations/r1", tokens["globex"]).status == 404
    assert call(gateway, "POST", "/v1/reservations/r1/release", tokens["globex"]).status == 404
    grant(gateway, tokens["globex"], amount=5)  # the same grant id in another tenant is its own
    assert balance(gateway, tokens["acme"])["available"] == 999


# -- balances ----------------------------------------------------------------------------------
def test_the_balance_burns_by_priority_reports_overage_and_equals_the_native_query(gateway, tokens):
    token = tokens["acme"]
    started = now_ms()
    grant(gateway, token, id="promo", amount=100, priority=1, subject=USER)
    grant(gateway, token, id="pack", amount=200, subject=USER, expiresAt=iso(started + 30 * 86_400_000))
    for n in range(4):
        use(gateway, token, f"e{n}", 80, identifier=USER["identifier"])
    use(gateway, token, "other", 50, identifier="bo@example.com")
    counted()
    found = balance(gateway, token, **USER)
    assert (found["granted"], found["consumed"], found["overage"], found["available"]) == (300, 300, 20, 0)
    assert [(g["id"], g["remaining"]) for g in found["grants"]] == [("promo", 0), ("pack", 0)]
    query = {"identifier": USER["identifier"], "from": iso(started - 1000), "to": iso(now_ms() + 60_000)}
    native = call(gateway, "GET", "/v1/usage/query", token, query=query).json()
    assert sum(row["value"] for row in native["data"]) == found["consumed"] + found["overage"] == 320


def test_a_voided_grant_keeps_what_it_covered_and_covers_nothing_after(gateway, tokens):
    token = tokens["acme"]
    grant(gateway, token, amount=100)
    use(gateway, token, "before", 60)
    counted()
    voided = call(gateway, "DELETE", "/v1/grants/pack", token).json()
    assert voided["voidedAt"] is not None and voided["remaining"] == 0
    use(gateway, token, "after", 10)
    counted()
    after = balance(gateway, token)
    assert (after["granted"], after["consumed"], after["overage"], after["available"]) == (0, 0, 10, 0)
    assert call(gateway, "DELETE", "/v1/grants/pack", token).json() == voided  # voiding twice changes nothing


# -- reservations ------------------------------------------------------------------------------
def test_a_reservation_holds_on_every_subject_or_on_none(gateway, tokens):
    token = tokens["acme"]
    grant(gateway, token, id="tenant-pack", amount=100)
    grant(gateway, token, id="ana-pack", amount=40, subject=USER)
    held = reserve(gateway, token, "run-1", 30, USER, {})
    assert held.status == 201, held.json()
    user_left, tenant_left = [s["available"] for s in held.json()["subjects"]]
    assert user_left == 10 and 0 <= tenant_left <= 70  # the tenant's: what its budget's slice still lends
    assert balance(gateway, token)["available"] == 70
    refused = reserve(gateway, token, "run-2", 20, {}, USER)
    assert refused.status == 402
    assert refused.json() == {"error": "Insufficient credits", "subject": USER, "available": 10}
    assert balance(gateway, token)["reserved"] == 30  # run-2 held nothing on the tenant either
    assert reserve(gateway, token, "run-1", 30, USER, {}).json() == held.json()  # the same answer, held once
    assert balance(gateway, token, **USER)["reserved"] == 30
    assert reserve(gateway, token, "run-1", 31, USER, {}).status == 409


def test_counted_events_settle_their_hold_and_a_release_returns_the_rest(gateway, tokens):
    token = tokens["acme"]
    grant(gateway, token, amount=100)
    assert reserve(gateway, token, "run", 50).status == 201
    use(gateway, token, "step-1", 20, reservationId="run")
    use(gateway, token, "step-1", 20, reservationId="run")  # resent: counted once
    counted()
    shown = call(gateway, "GET", "/v1/reservations/run", token).json()
    assert (shown["state"], shown["held"], shown["consumed"]) == ("open", 30, 20)
    now = balance(gateway, token)
    assert (now["consumed"], now["reserved"], now["available"]) == (20, 30, 50)
    released = call(gateway, "POST", "/v1/reservations/run/release", token).json()
    assert (released["state"], released["held"], released["consumed"]) == ("released", 0, 20)
    assert balance(gateway, token)["available"] == 80
    assert call(gateway, "POST", "/v1/reservations/run/release", token).json() == released


def test_an_expired_hold_is_never_counted(gateway, tokens):
    token = tokens["acme"]
    grant(gateway, token, amount=10)
    short = reserve(gateway, token, "short", 10, ttl=1)
    assert short.status == 201
    assert reserve(gateway, token, "next", 1).status == 402
    expires = datetime.fromisoformat(short.json()["expiresAt"]).timestamp()
    assert expires - time.time() <= 2  # a TTL under a minute ends on the next whole second
    time.sleep(max(0.0, expires - time.time()) + 0.01)
    assert balance(gateway, token)["reserved"] == 0
    assert call(gateway, "GET", "/v1/reservations/short", token).json()["state"] == "expired"
    assert reserve(gateway, token, "next", 10).status == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"credits": 0}, "credits"),
        ({"ttlSeconds": 3601}, "ttlSeconds"),
        ({"subjects": []}, "subjects"),
        ({"subjects": [{}, {}]}, "subjects"),
        ({"subjects": [{"user": "x"}]}, "subjects.0.user"),
        ({"id": ""}, "id"),
    ],
)
def test_a_bad_reservation_field_is_named(gateway, tokens, body, field):
    response = call(
        gateway, "POST", "/v1/reservations", tokens["acme"], {"id": "r", "subjects": [{}], "credits": 1, **body}
    )
    assert response.status == 400, response.json()
    assert f"'{field}'" in response.json()["error"]


# -- low-balance alerts ------------------------------------------------------------------------
def fired(gateway, token, alert_id: str) -> list[int]:
    found = call(gateway, "GET", f"/v1/alerts/{alert_id}/triggers", token).json()["data"]
    return [t["threshold"] for t in reversed(found)]  # oldest first


def test_a_balance_alert_fires_once_per_threshold_until_a_grant_lifts_it_above(gateway, tokens):
    token = tokens["acme"]
    grant(gateway, token, id="first", amount=100, subject=USER)
    spec = {"name": "low", "measure": "available", "subject": USER, "thresholds": [50, 10]}
    made = call(gateway, "POST", "/v1/alerts", token, spec)
    assert made.status == 201 and made.json()["period"] is None, made.json()
    alert = made.json()["id"]
    assert reserve(gateway, token, "run", 55, USER).status == 201  # available 45: a reservation crosses 50
    assert fired(gateway, token, alert) == [50]
    for n in range(5):
        use(gateway, token, f"run-{n}", 11, reservationId="run", **USER)
    counted()  # the hold is settled: still 45 available
    use(gateway, token, "plain", 40, **USER)
    counted()
    assert balance(gateway, token, **USER)["available"] == 5
    assert fired(gateway, token, alert) == [50, 10]
    grant(gateway, token, id="crumb", amount=3, subject=USER)  # 8: not lifted above 10, nothing fires again
    use(gateway, token, "more", 1, **USER)
    counted()
    assert fired(gateway, token, alert) == [50, 10]
    grant(gateway, token, id="top-up", amount=100, subject=USER)  # 107: above both again
    status = call(gateway, "GET", f"/v1/alerts/{alert}/status", token).json()
    assert (status["value"], status["crossed"], status["next"]) == (107, [], 50)
    use(gateway, token, "after", 60, **USER)
    counted()
    assert fired(gateway, token, alert) == [50, 10, 50]


def test_a_balance_alert_takes_no_period_and_others_need_one(gateway, tokens):
    base = {"name": "x", "thresholds": [1]}
    with_period = call(gateway, "POST", "/v1/alerts", tokens["acme"], {**base, "measure": "available", "period": "day"})
    assert with_period.status == 400 and "'period'" in with_period.json()["error"]
    without = call(gateway, "POST", "/v1/alerts", tokens["acme"], {**base, "measure": "credits"})
    assert without.status == 400 and "'period'" in without.json()["error"]


# -- the tenant's budget in slices -------------------------------------------------------------
def lent(tenant: str) -> int:
    from meter.credits.slices import SLICES
    from meter.dal.credits import credits

    return sum(s.free(now_ms()) for s in credits().slices(tenant, list(range(SLICES))).values())


@pytest.mark.parametrize("ending", ["release", "expiry"])
def test_the_budgets_slices_never_lend_more_than_the_tenant_has_through_a_holds_life(gateway, tokens, ending):
    token = tokens["acme"]

    def available() -> int:
        found = balance(gateway, token)["available"]
        assert lent("acme") <= found  # what the slices lend, summed, is never more than the tenant has
        return found

    grant(gateway, token, amount=100)
    assert available() == 100
    held = reserve(gateway, token, "run", 30, ttl=1 if ending == "expiry" else 300)
    assert held.status == 201 and available() == 70
    assert reserve(gateway, token, "fill", 70).status == 201  # every credit is now held, lent to slices
    assert available() == 0 and reserve(gateway, token, "none-left", 1).status == 402
    use(gateway, token, "step", 10, reservationId="run")
    counted()
    assert available() == 0  # settled: consumed 10, the hold keeps 20
    if ending == "release":
        call(gateway, "POST", "/v1/reservations/run/release", token)
    else:
        time.sleep(max(0.0, datetime.fromisoformat(held.json()["expiresAt"]).timestamp() - time.time()) + 0.01)
    assert available() == 20
    assert reserve(gateway, token, "again", 20).status == 201  # what came back can be held
    assert reserve(gateway, token, "one-more", 1).status == 402
