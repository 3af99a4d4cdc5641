"""Per-key rate limits: 429 with Retry-After once a key is over its requests per second."""

from __future__ import annotations

import pytest

from meter import ratelimit
from meter.auth import create_key
from tests.helpers import call

PATH = "/api/v1/consumption/identifier/nobody/dates"


@pytest.fixture
def frozen_second(monkeypatch):
    clock = {"ms": 1_795_000_000_000}
    monkeypatch.setattr(ratelimit, "now_ms", lambda: clock["ms"])
    return clock


def test_a_key_over_its_limit_gets_429_with_retry_after_until_the_next_second(gateway, keys, frozen_second):
    limited = create_key("acme", ["read"], rate_limit=3)
    assert [call(gateway, "GET", PATH, limited).status for _ in range(3)] == [404, 404, 404]

    refused = call(gateway, "GET", PATH, limited)
    assert refused.status == 429 and refused.headers["Retry-After"] == "1"
    assert "3 requests per second" in refused.json()["error"]
    assert call(gateway, "GET", PATH, keys["acme"]).status == 404  # limits are per key, not per tenant

    frozen_second["ms"] += 1000
    assert call(gateway, "GET", PATH, limited).status == 404


def test_gradient_routes_refuse_in_digitalocean_error_shape(gateway, frozen_second):
    limited = create_key("acme", ["read"], rate_limit=1)
    call(gateway, "GET", "/v2/gen-ai/agents/bot-1/usage", limited)
    refused = call(gateway, "GET", "/v2/gen-ai/agents/bot-1/usage", limited)
    assert refused.status == 429 and refused.json()["id"] == "too_many_requests"


def test_the_deployment_default_applies_and_zero_means_unlimited(gateway, frozen_second, monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_PER_SECOND", "2")
    from meter.config import get_settings

    get_settings.cache_clear()
    default = create_key("acme", ["read"])
    unlimited = create_key("acme", ["read"], rate_limit=0)
    assert [call(gateway, "GET", PATH, default).status for _ in range(3)] == [404, 404, 429]
    assert {call(gateway, "GET", PATH, unlimited).status for _ in range(5)} == {404}
    get_settings.cache_clear()
