"""Every route against every way a key can be wrong, through the gateway and the real authorizer."""

from __future__ import annotations

from unittest import mock

import pytest

from meter import dynamo
from meter.auth import INVALID_KEY, _checksum, new_key
from tests.conftest import STACK
from tests.helpers import aggregator, call

EVENT = {"id": "e-1", "type": "message", "count": 1, "credits": 3, "identifier": "ana@example.com"}

# Each route of the template: the scope it needs and a request that succeeds for acme.
REQUESTS = {
    ("POST", "/v1/events"): ("ingest", "/v1/events", EVENT, 200),
    ("GET", "/api/v1/consumption/identifier/{identifier}/dates"): (
        "read",
        "/api/v1/consumption/identifier/ana%40example.com/dates",
        None,
        200,
    ),
}


def test_every_template_route_is_in_the_matrix():
    assert {(r.method, r.path) for r in STACK.routes()} == set(REQUESTS)


@pytest.fixture
def seeded(gateway, keys):
    call(gateway, "POST", "/v1/events", keys["acme"], {**EVENT, "id": "seed"})
    aggregator(STACK).drain()
    return gateway


def forged_secret_for(public_id: str) -> str:
    """A well-formed secret with a valid checksum that is not the key's secret."""
    body = "A" * 30
    return f"sk_{body}{_checksum(public_id, body)}"


@pytest.mark.parametrize("route", sorted(REQUESTS))
def test_auth_matrix(seeded, keys, route):
    scope, path, body, ok_status = REQUESTS[route]
    method = route[0]
    acme_public = keys["acme"].split(":")[0]
    other_scope_key = keys["acme_read"] if scope == "ingest" else keys["acme_ingest"]

    missing = call(seeded, method, path, None, body)
    assert (missing.status, missing.json()) == (401, {"message": "Unauthorized"})

    refused = {
        "malformed": "not-a-key",
        "bad checksum": keys["acme"][:-1] + ("x" if keys["acme"][-1] != "x" else "y"),
        "unknown": ":".join(new_key()),
        "wrong secret": f"{acme_public}:{forged_secret_for(acme_public)}",
        "revoked": keys["acme_revoked"],
    }
    for case, token in refused.items():
        response = call(seeded, method, path, token, body)
        assert (response.status, response.json()) == (401, {"error": INVALID_KEY}), case

    wrong_scope = call(seeded, method, path, other_scope_key, body)
    assert wrong_scope.status == 403 and scope in wrong_scope.json()["error"]

    assert call(seeded, method, path, keys["acme"], body).status == ok_status
    if method == "GET":
        assert call(seeded, method, path, keys["globex"], body).status == 404


def test_bad_checksum_is_refused_before_any_database_read(gateway, keys):
    token = keys["acme"][:-1] + ("x" if keys["acme"][-1] != "x" else "y")
    with mock.patch.object(dynamo, "client", side_effect=AssertionError("database touched")) as client:
        response = call(gateway, "GET", "/api/v1/consumption/identifier/a/dates", token)
    assert response.status == 401 and client.call_count == 0


def test_unknown_path_and_wrong_method(gateway, keys):
    assert call(gateway, "GET", "/nope", keys["acme"]).status == 404
    assert call(gateway, "DELETE", "/v1/events", keys["acme"]).status == 405


def test_authorizer_verdicts_are_cached_per_header(gateway, keys):
    from meter.auth import revoke_key

    path = "/api/v1/consumption/identifier/nobody/dates"
    assert call(gateway, "GET", path, keys["acme_read"]).status == 404
    revoke_key(keys["acme_read"].split(":")[0])
    assert call(gateway, "GET", path, keys["acme_read"]).status == 404  # cached within the TTL
    gateway.clock = lambda: 10**9  # the TTL has passed
    assert call(gateway, "GET", path, keys["acme_read"]).status == 401
