"""Per-key rate limits: 429 with Retry-After once a key is over its requests per second."""

from __future__ import annotations

import pytest

from meter.api import ratelimit
from tests.helpers import call
from tools.admin import create_key

PATH = "/api/v1/consumption/identifier/nobody/dates"


@pytest.fixture
def frozen_second(monkeypatch):
    clock = {"ms": 1_795_000_000_000}
    monkeypatch.setattr(ratelimit, "now_ms", lambda: clock["ms"])
    return clock


def test_a_key_over_its_limit_gets_429_with_retry_after_until_the_next_second(gateway, tokens, frozen_second):
    limited = create_key("acme", ["read"], rate_limit=3)
    assert [call(gateway, "GET", PATH, limited).status for _ in range(3)] == [404, 404, 404]

    refused = call(gateway, "GET", PATH, limited)
    assert refused.status == 429 and refused.headers["Retry-After"] == "1"
    assert "3 requests per second" in refused.json()["error"]
    assert call(gateway, "GET", PATH, tokens["acme"]).status == 404  # limits are per key, not per tenant

    frozen_second["ms"] += 1000
    assert call(gateway, "GET", PATH, limited).status == 404


def test_gradient_routes_refuse_in_digitalocean_error_shape(gateway, frozen_second):
    limited = create_key("acme", ["read"], rate_limit=1)
    call(gateway, "GET", "/v2/gen-ai/agents/bot-1/usage", limited)
    refused = call(gateway, "GET", "/v2/gen-ai/agents/bot-1/usage", limited)
    assert refused.status == 429 and refused.json()["id"] == "too_many_requests"


def test_the_deployment_default_applies_and_zero_means_unlimited(gateway, frozen_second, monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_PER_SECOND", "2")
    from meter.core.config import get_settings

    get_settings.cache_clear()
    default = create_key("acme", ["read"])
    unlimited = create_key("acme", ["read"], rate_limit=0)
    assert [call(gateway, "GET", PATH, default).status for _ in range(3)] == [404, 404, 429]
    assert {call(gateway, "GET", PATH, unlimited).status for _ in range(5)} == {404}
    get_settings.cache_clear()


def _window_count(key_id: str, second: int) -> int | None:
    from meter.core.config import get_settings
    from meter.dal import dynamo, keys

    found = (
        dynamo.client()
        .get_item(TableName=get_settings().control_table, Key={"pk": {"S": keys.rate_pk(key_id, second)}})
        .get("Item")
    )
    return int(found["n"]["N"]) if found else None


def test_a_key_below_a_quarter_of_its_limit_costs_no_write(gateway, frozen_second):
    limited = create_key("acme", ["read"], rate_limit=100)
    key_id, second = limited.split(":")[0], frozen_second["ms"] // 1000
    assert {call(gateway, "GET", PATH, limited).status for _ in range(24)} == {404}
    assert _window_count(key_id, second) is None  # nothing written yet
    call(gateway, "GET", PATH, limited)
    assert _window_count(key_id, second) == 25  # one write for a quarter of the limit


def test_containers_share_the_limit_through_the_window_they_report_to(gateway, frozen_second):
    limited = create_key("acme", ["read"], rate_limit=8)
    assert [call(gateway, "GET", PATH, limited).status for _ in range(6)] == [404] * 6  # reported: 6
    ratelimit._windows.clear()  # a second container, which has counted nothing itself
    statuses = [call(gateway, "GET", PATH, limited).status for _ in range(4)]
    assert statuses == [404, 404, 404, 429]  # its 2nd request reports 2 more: 8; its 4th would make 10
