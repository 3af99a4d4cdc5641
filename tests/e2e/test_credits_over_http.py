"""Credits on the local stack over real HTTP (DynamoDB Local): concurrent reservations never
over-admit and never falsely refuse, and a reservation is settled by the events that carry it."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.e2e.test_local_stack import eventually, headers


def test_twenty_threads_reserving_30_against_1000_admit_exactly_33(stack):
    tenant = f"cr{uuid.uuid4().hex[:6]}"
    admin = stack.key(tenant, "ingest,read,admin", rate_limit=0)
    base = stack.base_url
    made = requests.post(f"{base}/v1/grants", headers=headers(admin), json={"id": "pack", "amount": 1000}, timeout=10)
    assert made.status_code == 201, made.text

    def reserve(n: int) -> requests.Response:
        body = {"id": f"run-{n}", "subjects": [{}], "credits": 30}
        return requests.post(f"{base}/v1/reservations", headers=headers(admin), json=body, timeout=60)

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(reserve, range(100)))
    statuses = [a.status_code for a in answers]
    assert sorted(set(statuses)) == [201, 402], statuses
    assert statuses.count(201) == 33  # 34 x 30 > 1,000
    refusals = [a.json() for a in answers if a.status_code == 402]
    assert all(r["available"] < 30 for r in refusals), refusals  # each refused only when under 30 were left
    balance = requests.get(f"{base}/v1/balance", headers=headers(admin), timeout=10).json()
    assert (balance["granted"], balance["reserved"], balance["available"]) == (1000, 990, 10)


def test_events_carrying_a_reservation_settle_it_and_a_release_returns_the_rest(stack):
    tenant = f"cs{uuid.uuid4().hex[:6]}"
    token = stack.key(tenant, "ingest,read,admin")
    base = stack.base_url
    user = {"identifier": "ana@example.com"}
    for grant in ({"id": "ana", "amount": 100, "subject": user}, {"id": "org", "amount": 500}):
        assert requests.post(f"{base}/v1/grants", headers=headers(token), json=grant, timeout=10).status_code == 201
    body = {"id": "run-1", "subjects": [user, {}], "credits": 60, "ttlSeconds": 600}
    held = requests.post(f"{base}/v1/reservations", headers=headers(token), json=body, timeout=10)
    assert held.status_code == 201, held.text
    user_left, tenant_left = [s["available"] for s in held.json()["subjects"]]
    assert user_left == 40 and 0 <= tenant_left <= 440  # at least what the tenant budget's slice lends
    events = [{"id": f"step-{n}", "type": "tokens.output", "count": 100, "credits": 15, "reservationId": "run-1",
               **user} for n in range(3)]  # fmt: skip
    sent = requests.post(f"{base}/v1/events", headers=headers(token), json={"events": events}, timeout=10)
    assert sent.status_code == 200, sent.text

    def settled():
        shown = requests.get(f"{base}/v1/reservations/run-1", headers=headers(token), timeout=10).json()
        return shown if shown["consumed"] == 45 else None

    shown = eventually(settled, timeout=120)
    assert shown and (shown["held"], shown["state"]) == (15, "open"), shown
    released = requests.post(f"{base}/v1/reservations/run-1/release", headers=headers(token), timeout=10).json()
    assert (released["held"], released["consumed"], released["state"]) == (0, 45, "released")
    for query, available in ((user, 55), ({}, 455)):
        found = requests.get(f"{base}/v1/balance", headers=headers(token), params=query, timeout=10).json()
        assert (found["consumed"], found["reserved"], found["available"]) == (45, 0, available), found
