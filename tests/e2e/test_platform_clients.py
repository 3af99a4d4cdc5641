"""The three platforms' clients against the local stack, as their SDKs and documents call the API."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.e2e.test_local_stack import eventually, headers

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


@pytest.fixture(scope="module")
def tenant(stack):
    name = f"p{uuid.uuid4().hex[:8]}"
    token = stack.key(name)
    events = [
        {
            "id": f"ev-{i}",
            "type": kind,
            "count": count,
            "credits": i + 1,
            "agentId": "agent-uuid-1",
            "model": "gpt-4o",
            "conversationId": "conv-1",
            "timestamp": (NOW - timedelta(minutes=i)).isoformat(),
            "meta": {"channel": "web" if i % 2 else "api", "vip": i == 3},
        }
        for i, (kind, count) in enumerate(
            [("tokens.input", 100), ("tokens.output", 30), ("message", 1), ("conversation", 1), ("tokens.input", 50)]
        )
    ]
    response = requests.post(f"{stack.base_url}/v1/events", headers=headers(token), json={"events": events}, timeout=10)
    assert response.status_code == 200, response.text
    url = f"{stack.base_url}/v2/gen-ai/agents/agent-uuid-1/usage"
    assert eventually(lambda: requests.get(url, headers=headers(token), timeout=10).status_code == 200)
    return {"name": name, "token": token}


def test_chatbotkit_sdk_style_pagination_in_node(stack, tenant):
    """The official SDK resolves paths with new URL(path, base), sends meta.key=v, and stops on an empty page."""
    script = """
const [base, token] = process.argv.slice(1);
(async () => {
  const ids = []; let cursor; let pages = 0;
  do {
    const url = new URL('/api/v1/usage/list', base);
    url.searchParams.set('take', '1');
    url.searchParams.set('meta.channel', 'web');
    if (cursor) url.searchParams.set('cursor', cursor);
    const page = await (await fetch(url, {headers: {Authorization: `Bearer ${token}`}})).json();
    if (page.items.length === 0) break;
    pages += 1; page.items.forEach(item => ids.push(item.id)); cursor = page.cursor;
  } while (cursor);
  console.log(JSON.stringify({ids, pages}));
})();
"""
    result = subprocess.run(
        ["node", "-e", script, stack.base_url + "/", tenant["token"]], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == {"ids": ["ev-1", "ev-3"], "pages": 2}


def test_chatbotkit_series_and_snapshot(stack, tenant):
    auth = headers(tenant["token"])
    series = requests.get(f"{stack.base_url}/api/v1/usage/series/fetch", headers=auth, timeout=10).json()
    assert sum(point["total"] for point in series["tokens"]) == 180
    assert all(point["date"] % 86_400_000 == 0 for point in series["tokens"])
    bot = requests.get(f"{stack.base_url}/api/v1/bot/agent-uuid-1/usage/fetch", headers=auth, timeout=10).json()
    assert bot == {"tokens": 180, "conversations": 1, "messages": 1}
    conversation = requests.get(f"{stack.base_url}/api/v1/conversation/conv-1/usage/fetch", headers=auth, timeout=10)
    assert conversation.json() == {"tokens": 180, "conversations": 1, "messages": 1}
    snapshot = requests.get(f"{stack.base_url}/api/v1/usage/fetch", headers=auth, timeout=10).json()
    assert set(snapshot) == {"tokens", "conversations", "messages", "database"}
    assert set(snapshot["database"]) == {"datasets", "records", "skillsets", "abilities", "files", "users"}
    assert all(isinstance(v, int) for v in snapshot["database"].values())


def test_chatbotkit_csv_with_curl(stack, tenant):
    result = subprocess.run(
        [
            "curl",
            "-s",
            f"{stack.base_url}/api/v1/usage/list?order=asc",
            "-H",
            "Accept: text/csv",
            "-H",
            f"Authorization: Bearer {tenant['token']}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("id,type,count,createdAt") and len(lines) == 6
    assert lines[1].startswith("ev-4,tokens.input,50,")


def test_gradient_client_with_rfc3339_range(stack, tenant):
    params = {"start": (NOW - timedelta(minutes=2, seconds=30)).isoformat().replace("+00:00", "Z")}
    response = requests.get(
        f"{stack.base_url}/v2/gen-ai/agents/agent-uuid-1/usage",
        headers=headers(tenant["token"]),
        params=params,
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["usage"]["measurements"] == [
        {"tokens": 100, "usage_type": "INPUT"},
        {"tokens": 30, "usage_type": "OUTPUT"},
    ]
    missing = requests.get(
        f"{stack.base_url}/v2/gen-ai/agents/nope/usage", headers=headers(tenant["token"]), timeout=10
    )
    assert missing.status_code == 404 and set(missing.json()) == {"id", "message", "request_id"}


def test_agentsgt_agent_and_organization(stack, tenant):
    auth, base = headers(tenant["token"]), stack.base_url
    dates = requests.get(f"{base}/api/v1/consumption/agent/agent-uuid-1/dates", headers=auth, timeout=10).json()
    assert sum(day["total_credits"] for day in dates["data"]) == 15
    models = requests.get(f"{base}/api/v1/consumption/agent/agent-uuid-1/models", headers=auth, timeout=10).json()
    assert models == {"data": [{"model_id": "gpt-4o", "name": "gpt-4o", "total_credits": 15}]}
    summary = requests.get(f"{base}/api/v1/consumption/organization/{tenant['name']}/summary", headers=auth, timeout=10)
    assert summary.json()["data"]["total_consumption"] == 15
    other = requests.get(f"{base}/api/v1/consumption/organization/someone-else/agents", headers=auth, timeout=10)
    assert other.status_code == 404
