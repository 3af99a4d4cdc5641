"""Every route against every way a key can be wrong, through the gateway and the handlers' own auth."""

from __future__ import annotations

import json
from unittest import mock

import pytest

from meter.api.auth import INVALID_KEY, _checksum, new_key
from meter.dal import dynamo
from tests.conftest import STACK
from tests.helpers import aggregator, call

EVENT = {
    "id": "e-1",
    "type": "tokens.input",
    "count": 10,
    "credits": 3,
    "identifier": "ana@example.com",
    "agentId": "bot-1",
    "model": "m-1",
    "conversationId": "conv-1",
}
CLOUDEVENT = {"specversion": "1.0", "id": "ce-1", "source": "app", "type": "message", "subject": "ana@example.com"}
ALERT = {"name": "budget", "subject": {"agentId": "bot-1"}, "measure": "credits", "period": "day", "thresholds": [1]}
ZEROS = {"tokens": 0, "conversations": 0, "messages": 0}


def empty_list(body) -> bool:
    return body == {"items": []}


def empty_series(body) -> bool:
    return body == {"tokens": [], "conversations": [], "messages": []}


def zero_totals(body) -> bool:
    return {k: body[k] for k in ZEROS} == ZEROS


def no_rows(body) -> bool:
    return body["data"] == []


def names_its_own_tenant(body) -> bool:
    return body["tenant"] == "globex"


def no_credits(body) -> bool:
    return (body["available"], body["granted"], body["grants"]) == (0, 0, [])


# Each route of the template: its scope, a request that succeeds for acme, and what globex (another
# tenant) must get for the same request: 404, or a body proving it sees none of acme's data.
REQUESTS = {
    ("POST", "/v1/events"): ("ingest", "/v1/events", EVENT, None),
    ("POST", "/api/v1/events"): ("ingest", "/api/v1/events", CLOUDEVENT, None),
    ("POST", "/v1/traces"): ("ingest", "/v1/traces", {"resourceSpans": []}, None),
    ("GET", "/api/v1/consumption/identifier/{identifier}/dates"): (
        "read",
        "/api/v1/consumption/identifier/ana%40example.com/dates",
        None,
        404,
    ),
    ("GET", "/api/v1/consumption/agent/{agentId}/dates"): ("read", "/api/v1/consumption/agent/bot-1/dates", None, 404),
    ("GET", "/api/v1/consumption/agent/{agentId}/models"): (
        "read",
        "/api/v1/consumption/agent/bot-1/models",
        None,
        404,
    ),
    ("GET", "/api/v1/consumption/organization/{orgId}/summary"): (
        "read",
        "/api/v1/consumption/organization/acme/summary",
        None,
        404,
    ),
    ("GET", "/api/v1/consumption/organization/{orgId}/agents"): (
        "read",
        "/api/v1/consumption/organization/acme/agents",
        None,
        404,
    ),
    ("GET", "/v2/gen-ai/agents/{uuid}/usage"): ("read", "/v2/gen-ai/agents/bot-1/usage", None, 404),
    ("GET", "/api/v1/usage/list"): ("read", "/api/v1/usage/list", None, empty_list),
    ("GET", "/v1/usage/query"): ("read", "/v1/usage/query", None, no_rows),
    ("GET", "/api/v1/usage/series/fetch"): ("read", "/api/v1/usage/series/fetch", None, empty_series),
    ("GET", "/api/v1/usage/fetch"): ("read", "/api/v1/usage/fetch", None, zero_totals),
    ("GET", "/api/v1/bot/{botId}/usage/fetch"): ("read", "/api/v1/bot/bot-1/usage/fetch", None, zero_totals),
    ("GET", "/api/v1/conversation/{conversationId}/usage/fetch"): (
        "read",
        "/api/v1/conversation/conv-1/usage/fetch",
        None,
        zero_totals,
    ),
    ("GET", "/v1/me"): ("read", "/v1/me", None, names_its_own_tenant),
    ("POST", "/v1/alerts"): ("admin", "/v1/alerts", ALERT, None),
    ("GET", "/v1/alerts"): ("read", "/v1/alerts", None, no_rows),
    ("GET", "/v1/alerts/{alertId}"): ("read", "/v1/alerts/{alert}", None, 404),
    ("PATCH", "/v1/alerts/{alertId}"): ("admin", "/v1/alerts/{alert}", {"name": "renamed"}, 404),
    ("DELETE", "/v1/alerts/{alertId}"): ("admin", "/v1/alerts/{alert}", None, 404),
    ("GET", "/v1/alerts/{alertId}/status"): ("read", "/v1/alerts/{alert}/status", None, 404),
    ("GET", "/v1/alerts/{alertId}/triggers"): ("read", "/v1/alerts/{alert}/triggers", None, 404),
    ("POST", "/v1/grants"): ("admin", "/v1/grants", {"id": "more", "amount": 5}, None),
    ("GET", "/v1/grants"): ("read", "/v1/grants", None, no_rows),
    ("GET", "/v1/grants/{grantId}"): ("read", "/v1/grants/pack", None, 404),
    ("DELETE", "/v1/grants/{grantId}"): ("admin", "/v1/grants/pack", None, 404),
    ("GET", "/v1/balance"): ("read", "/v1/balance", None, no_credits),
    ("POST", "/v1/reservations"): ("ingest", "/v1/reservations", {"id": "r2", "subjects": [{}], "credits": 1}, None),
    ("GET", "/v1/reservations/{reservationId}"): ("ingest", "/v1/reservations/run", None, 404),
    ("POST", "/v1/reservations/{reservationId}/release"): ("ingest", "/v1/reservations/run/release", None, 404),
}
CREATED = {("POST", "/v1/alerts"), ("POST", "/v1/grants"), ("POST", "/v1/reservations")}


def refusal_body(path: str, body: dict) -> bool:
    """The API's own 401 body for a bad key (DigitalOcean's shape on /v2, ours elsewhere)."""
    if path.startswith("/v2/"):
        return body["id"] == "unauthorized" and body["message"] == INVALID_KEY
    return body == {"error": INVALID_KEY}


# The dashboard's page and assets need no key: what it shows comes from the routes above, with the
# key the user gives it.
PUBLIC = {("GET", "/"): "/", ("GET", "/dashboard/{file}"): "/dashboard/dashboard.js"}


def test_every_template_route_is_in_the_matrix():
    assert {(r.method, r.path) for r in STACK.routes()} == set(REQUESTS) | set(PUBLIC)


def test_the_dashboard_is_served_without_a_key_and_holds_no_data(seeded):
    for path in PUBLIC.values():
        response = call(seeded, "GET", path)
        assert response.status == 200 and response.headers["Content-Type"].startswith(("text/html", "text/javascript"))
        assert b"ana@example.com" not in response.body and b"seed" not in response.body
    for outside in ("/dashboard/..%2Fapp.py", "/dashboard/app.py", "/dashboard/.hidden.js", "/dashboard/missing.js"):
        assert call(seeded, "GET", outside).status == 404, outside


@pytest.fixture
def seeded(gateway, tokens):
    call(gateway, "POST", "/v1/events", tokens["acme"], {**EVENT, "id": "seed"})
    aggregator(STACK).drain()
    assert call(gateway, "POST", "/v1/grants", tokens["acme"], {"id": "pack", "amount": 1000}).status == 201
    held = {"id": "run", "subjects": [{}], "credits": 1}
    assert call(gateway, "POST", "/v1/reservations", tokens["acme"], held).status == 201
    return gateway


@pytest.fixture
def acme_alert(seeded, tokens) -> str:
    return call(seeded, "POST", "/v1/alerts", tokens["acme"], ALERT).json()["id"]


def forged_secret_for(public_id: str) -> str:
    """A well-formed secret with a valid checksum that is not the key's secret."""
    body = "A" * 30
    return f"sk_{body}{_checksum(public_id, body)}"


@pytest.mark.parametrize("route", sorted(REQUESTS))
def test_auth_matrix(seeded, tokens, acme_alert, route):
    scope, path, body, other_tenant = REQUESTS[route]
    path = path.replace("{alert}", acme_alert)
    method = route[0]
    acme_public = tokens["acme"].split(":")[0]
    other_scope_key = tokens["acme_read"] if scope == "ingest" else tokens["acme_ingest"]

    refused = {
        "missing": None,
        "malformed": "not-a-key",
        "bad checksum": tokens["acme"][:-1] + ("x" if tokens["acme"][-1] != "x" else "y"),
        "unknown": ":".join(new_key()),
        "wrong secret": f"{acme_public}:{forged_secret_for(acme_public)}",
        "revoked": tokens["acme_revoked"],
    }
    for case, token in refused.items():
        response = call(seeded, method, path, token, body)
        assert response.status == 401 and refusal_body(path, response.json()), case

    wrong_scope = call(seeded, method, path, other_scope_key, body)
    assert wrong_scope.status == 403 and scope in json.dumps(wrong_scope.json())

    expected = 201 if route in CREATED else 204 if route == ("POST", "/api/v1/events") else 200
    assert call(seeded, method, path, tokens["acme"], body).status == expected
    if other_tenant is None:
        return
    theirs = call(seeded, method, path, tokens["globex"], body)
    if other_tenant == 404:
        assert theirs.status == 404
    else:
        assert theirs.status == 200 and other_tenant(theirs.json()), theirs.json()


def test_a_forged_key_is_refused_before_any_database_read(gateway, tokens):
    """A CRC checksum anyone could compute; the HMAC needs the deployment's secret."""
    import zlib

    from meter.api.auth import _base62

    public = "pk_" + "B" * 16
    body = "C" * 30
    crc_forged = f"{public}:sk_{body}{_base62(zlib.crc32(f'{public}:{body}'.encode()), 6)}"
    call(gateway, "GET", "/api/v1/consumption/identifier/a/dates", tokens["acme"])  # the container is warm
    for token in (crc_forged, tokens["acme"][:-1] + ("x" if tokens["acme"][-1] != "x" else "y")):
        with mock.patch.object(dynamo, "client", side_effect=AssertionError("database touched")) as client:
            response = call(gateway, "GET", "/api/v1/consumption/identifier/a/dates", token)
        assert response.status == 401 and client.call_count == 0


def test_unknown_path_and_wrong_method(gateway, tokens):
    assert call(gateway, "GET", "/nope", tokens["acme"]).status == 404
    assert call(gateway, "DELETE", "/v1/events", tokens["acme"]).status == 405


def test_verdicts_are_cached_per_header_until_the_ttl(gateway, tokens):
    from meter.api import auth
    from tools.admin import revoke_key

    path = "/api/v1/consumption/identifier/nobody/dates"
    assert call(gateway, "GET", path, tokens["acme_read"]).status == 404
    revoke_key(tokens["acme_read"].split(":")[0])
    assert call(gateway, "GET", path, tokens["acme_read"]).status == 404  # cached within the TTL
    with mock.patch.object(auth, "_clock", lambda: 10**9):  # the TTL has passed
        assert call(gateway, "GET", path, tokens["acme_read"]).status == 401


def test_a_cached_verdict_never_admits_a_wrong_secret_for_the_same_key(gateway, tokens):
    path = "/api/v1/consumption/identifier/nobody/dates"
    assert call(gateway, "GET", path, tokens["acme"]).status == 404  # verdict cached for this header
    public = tokens["acme"].split(":")[0]
    assert call(gateway, "GET", path, f"{public}:{forged_secret_for(public)}").status == 401


def test_event_ids_are_per_tenant_so_a_resend_reveals_nothing_across_tenants(seeded, tokens):
    body = call(seeded, "POST", "/v1/events", tokens["globex"], {**EVENT, "id": "seed", "count": 99}).json()
    assert (body["accepted"], body["duplicates"], body["conflicts"]) == (1, 0, 0)


@pytest.mark.parametrize("query", [{"botId": "bot-1"}, {"conversationId": "conv-1"}, {"type": "tokens.input"}])
def test_list_filters_naming_another_tenants_ids_return_nothing(seeded, tokens, query):
    assert call(seeded, "GET", "/api/v1/usage/list", tokens["globex"], query=query).json() == {"items": []}
    assert call(seeded, "GET", "/api/v1/usage/list", tokens["acme"], query=query).json()["items"]


def test_no_response_to_another_tenant_mentions_this_tenants_data(seeded, tokens):
    for (method, _), (_, path, body, _) in REQUESTS.items():
        if method == "GET":
            text = call(seeded, method, path, tokens["globex"], body).body.decode()
            assert not any(secret in text for secret in ("seed", "ana@example.com", "m-1")), path


def test_a_range_wholly_in_the_future_is_empty_never_a_server_error(seeded, tokens):
    """Found by schemathesis: a future ``from`` with an open end inverted a key range (a 500)."""
    future = {"from": "2186-07-28T16:50:54+09:07", "start": "2186-07-28T16:50:54Z"}
    for (method, _), (_, path, _, _) in REQUESTS.items():
        if method == "GET" and path != "/v1/usage/query":
            # Gradient's stop defaults to now, so a future start is a 400 naming both parameters.
            expected = (200, 400, 404) if path.startswith("/v2/") else (200, 404)
            assert call(seeded, method, path, tokens["acme"], query=future).status in expected, path
    # The query API's "to" defaults to now, so a future "from" alone is a 400 naming it.
    response = call(seeded, "GET", "/v1/usage/query", tokens["acme"], query={"from": future["from"]})
    assert response.status == 400 and "'from'" in response.json()["error"]
