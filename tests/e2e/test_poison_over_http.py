"""On the local stack (DynamoDB Local, the local SQS, the runner's stream mapping): a tenant whose
day item sits at DynamoDB's 400 KB limit holds back no one. DynamoDB Local refuses the item's
update and names it; the aggregator sets it aside to the failure queue and counts the rest, and
the runner's log names the aggregator as the function that said so."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import requests

from local.template import Stack
from tests.e2e.test_local_stack import eventually, headers
from tests.helpers import set_aside_notices

MAX_ITEM_BYTES = 409_600


def _credits_of(stack, token: str, user: str) -> int:
    url = f"{stack.base_url}/api/v1/consumption/identifier/{user}/dates"
    answer = requests.get(url, headers=headers(token), timeout=10).json()
    return sum(d["total_credits"] for d in answer.get("data") or [])  # 404 until the user is counted


def test_a_tenant_item_at_the_size_limit_is_set_aside_and_everyone_else_is_counted(stack):
    poisoned, healthy = f"full{uuid.uuid4().hex[:6]}", f"fine{uuid.uuid4().hex[:6]}"
    tokens = {tenant: stack.key(tenant) for tenant in (poisoned, healthy)}
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    pk, sk = f"{poisoned}#T", f"D#{today}"
    filler = "x" * (MAX_ITEM_BYTES - len("pk" + pk + "sk" + sk + "filler") - 10)  # an old item grown to the limit
    stack.client("dynamodb").put_item(
        TableName=Stack().physical_name("AggregatesTable"),
        Item={"pk": {"S": pk}, "sk": {"S": sk}, "filler": {"S": filler}},
    )
    for n in range(3):  # the two tenants' events interleaved
        for token in tokens.values():
            event = {"id": f"e{n}", "type": "message", "count": 1, "credits": 2, "identifier": "ana"}
            posted = requests.post(f"{stack.base_url}/v1/events", headers=headers(token), json=event, timeout=10)
            assert posted.status_code == 200, posted.text

    assert eventually(lambda: _credits_of(stack, tokens[healthy], "ana") == 6)
    assert eventually(lambda: _credits_of(stack, tokens[poisoned], "ana") == 6)  # its other items counted
    refused = eventually(lambda: [n for n in set_aside_notices(stack.client("sqs")) if n.get("tenant") == poisoned])
    # only that item, once per window that touched it (the six events may straddle two windows)
    assert {tuple(item) for n in refused for item in n["items"]} == {(pk, sk)}
    assert "size" in refused[0]["reason"] and refused[0]["days"] == [today]
    lines = (stack.state_dir / "runner.log").read_text(errors="replace").splitlines()
    said = [json.loads(line) for line in lines if "aggregate writes refused" in line and poisoned in line]
    assert said and {line["function_name"] for line in said} == {"AggregateStreamFunction"}
