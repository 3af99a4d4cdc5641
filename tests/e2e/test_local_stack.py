"""End to end over real HTTP: the local runner, DynamoDB Local, and clients as the seed documents use them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
import requests

from local.template import ROOT


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def eventually(check, timeout: float = 15.0):
    """Poll until ``check()`` returns something truthy (aggregation is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


@pytest.fixture(scope="module")
def tenant(stack):
    """A tenant with data: three events over two days for user@example.com and a phone number."""
    name = f"t{uuid.uuid4().hex[:8]}"
    token = stack.key(name)
    today = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    events = [
        {
            "id": "a",
            "type": "tokens.input",
            "count": 500,
            "credits": 12,
            "identifier": "user@example.com",
            "timestamp": (today - timedelta(days=1)).isoformat(),
        },
        {
            "id": "b",
            "type": "message",
            "count": 1,
            "credits": 18,
            "identifier": "user@example.com",
            "timestamp": today.isoformat(),
        },
        {
            "id": "c",
            "type": "message",
            "count": 1,
            "credits": 9,
            "identifier": "+15551234567",
            "timestamp": today.isoformat(),
        },
    ]
    response = requests.post(f"{stack.base_url}/v1/events", headers=headers(token), json={"events": events}, timeout=10)
    assert response.status_code == 200, response.text
    url = f"{stack.base_url}/api/v1/consumption/identifier/{quote('user@example.com')}/dates"
    assert eventually(lambda: requests.get(url, headers=headers(token), timeout=10).status_code == 200)
    return {
        "name": name,
        "token": token,
        "today": today.strftime("%Y-%m-%d"),
        "yesterday": (today - timedelta(days=1)).strftime("%Y-%m-%d"),
        "moment": today,
    }


def test_python_requests_as_in_the_seed(stack, tenant):
    end, start = datetime.now(), datetime.now() - timedelta(days=30)
    params = {"from": start.isoformat() + "Z", "to": end.isoformat() + "Z"}
    response = requests.get(
        f"{stack.base_url}/api/v1/consumption/identifier/{quote('user@example.com')}/dates",
        headers=headers(tenant["token"]),
        params=params,
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json() == {
        "data": [{"date": tenant["yesterday"], "total_credits": 12}, {"date": tenant["today"], "total_credits": 18}]
    }


@pytest.mark.parametrize("path_identifier", ["user@example.com", "user%40example.com"])
def test_curl_as_in_the_seed(stack, tenant, path_identifier):
    assert shutil.which("curl"), "curl is part of the seed's examples"
    result = subprocess.run(
        [
            "curl",
            "-s",
            "-X",
            "GET",
            f"{stack.base_url}/api/v1/consumption/identifier/{path_identifier}/dates",
            "-H",
            f"Authorization: Bearer {tenant['token']}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sum(day["total_credits"] for day in json.loads(result.stdout)["data"]) == 30


def test_phone_number_identifier_with_curl(stack, tenant):
    result = subprocess.run(
        [
            "curl",
            "-s",
            f"{stack.base_url}/api/v1/consumption/identifier/%2B15551234567/dates",
            "-H",
            f"Authorization: Bearer {tenant['token']}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout) == {"data": [{"date": tenant["today"], "total_credits": 9}]}


def test_javascript_fetch_as_in_the_seed(stack, tenant):
    script = """
const [base, token] = process.argv.slice(1);  // node -e: no script path in argv
const identifier = 'user@example.com';
const params = new URLSearchParams({from: '2000-01-01T00:00:00Z', to: '2100-01-31T23:59:59Z'});
fetch(`${base}/api/v1/consumption/identifier/${encodeURIComponent(identifier)}/dates?${params}`, {
  method: 'GET', headers: {'Authorization': `Bearer ${token}`, 'Content-Type': 'application/json'}
}).then(r => r.json()).then(data => {
  const total = data.data.reduce((sum, day) => sum + day.total_credits, 0);
  console.log(JSON.stringify({total, days: data.data.length}));
});
"""
    result = subprocess.run(
        ["node", "-e", script, stack.base_url, tenant["token"]], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == {"total": 30, "days": 2}


def test_native_query_with_curl_in_a_half_hour_zone_as_json_and_csv(stack, tenant):
    from zoneinfo import ZoneInfo

    auth = f"Authorization: Bearer {tenant['token']}"
    command = ["curl", "-s", "-G", f"{stack.base_url}/v1/usage/query", "-H", auth, "--data-urlencode",
               "timeZone=Asia/Kolkata", "-d", "windowSize=DAY", "-d", "groupBy=identifier"]  # fmt: skip
    body = json.loads(subprocess.run(command, capture_output=True, text=True, check=True, timeout=30).stdout)
    kolkata = ZoneInfo("Asia/Kolkata")
    moment = tenant["moment"]
    expected: dict = {}
    for when, who, credits in [(moment - timedelta(days=1), "user@example.com", 12), (moment, "user@example.com", 18),
                               (moment, "+15551234567", 9)]:  # fmt: skip
        key = (when.astimezone(kolkata).date().isoformat(), who)
        expected[key] = expected.get(key, 0) + credits
    rows = {(row["windowStart"][:10], row["groupBy"]["identifier"]): row["value"] for row in body["data"]}
    assert body["timeZone"] == "Asia/Kolkata" and rows == expected
    assert all(row["windowStart"].endswith("+05:30") for row in body["data"])
    csv_text = subprocess.run(
        [*command, "-H", "Accept: text/csv"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert csv_text.splitlines()[0] == "windowStart,windowEnd,identifier,value"
    assert len(csv_text.splitlines()) == len(body["data"]) + 1


def test_errors_are_json(stack, tenant):
    base, auth = stack.base_url, headers(tenant["token"])
    assert requests.get(f"{base}/no/such/route", headers=auth, timeout=10).status_code == 404
    wrong_method = requests.delete(f"{base}/v1/events", headers=auth, timeout=10)
    assert wrong_method.status_code == 405 and wrong_method.json()
    missing = requests.get(f"{base}/api/v1/consumption/identifier/x/dates", timeout=10)
    assert missing.status_code == 401 and missing.json()
    bad_key = requests.get(f"{base}/api/v1/consumption/identifier/x/dates", headers=headers("pk_x:sk_y"), timeout=10)
    assert (bad_key.status_code, bad_key.json()) == (401, {"error": "Invalid or missing API key"})
    bad_date = requests.get(
        f"{base}/api/v1/consumption/identifier/x/dates", headers=auth, params={"from": "nope"}, timeout=10
    )
    assert bad_date.status_code == 400 and "'from'" in bad_date.json()["error"]
    other_tenant = stack.key(f"o{uuid.uuid4().hex[:8]}", "read")
    hidden = requests.get(
        f"{base}/api/v1/consumption/identifier/{quote('user@example.com')}/dates",
        headers=headers(other_tenant),
        timeout=10,
    )
    assert hidden.status_code == 404


def test_duplicates_and_conflicts_over_http(stack, tenant):
    url, auth = f"{stack.base_url}/v1/events", headers(tenant["token"])
    event = {"id": "dup-1", "type": "message", "count": 1, "credits": 1, "identifier": "dup@example.com"}
    assert requests.post(url, headers=auth, json=event, timeout=10).json()["accepted"] == 1
    assert requests.post(url, headers=auth, json=event, timeout=10).json()["duplicates"] == 1
    conflict = requests.post(url, headers=auth, json={**event, "count": 2}, timeout=10)
    assert conflict.status_code == 409 and conflict.json()["results"] == [{"id": "dup-1", "status": "conflict"}]
    dates = f"{stack.base_url}/api/v1/consumption/identifier/dup%40example.com/dates"
    body = eventually(lambda: requests.get(dates, headers=auth, timeout=10).json().get("data"))
    assert sum(d["total_credits"] for d in body) == 1


def test_queue_ingestion_reaches_the_api(stack, tenant):
    sqs = stack.client("sqs")
    queue_url = sqs.get_queue_url(QueueName="IngestQueue")["QueueUrl"]
    event = {"id": "from-queue", "type": "message", "count": 1, "credits": 4, "identifier": "queue@example.com"}
    sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=json.dumps(event),
        MessageAttributes={"tenant": {"DataType": "String", "StringValue": tenant["name"]}},
    )
    dates = f"{stack.base_url}/api/v1/consumption/identifier/queue%40example.com/dates"
    response = eventually(lambda: (r := requests.get(dates, headers=headers(tenant["token"]), timeout=10)).ok and r)
    assert response and response.json()["data"][0]["total_credits"] == 4


def test_the_runner_reads_routes_from_the_template(stack):
    from local.template import Stack

    routes = Stack().routes()
    assert routes and (ROOT / "template.yaml").exists()
    public = {"/": 200, "/dashboard/{file}": 404}  # the dashboard needs no key; "file" is no asset
    for route in routes:
        path = route.path.replace("{", "").replace("}", "")
        response = requests.request(route.method, f"{stack.base_url}{path}", timeout=10)
        assert response.status_code == public.get(route.path, 401), path  # served and refused, not 404


def test_meterctl_against_the_local_endpoint_with_no_aws_configuration(stack, tenant):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(stack.state_dir)  # no ~/.aws either
    command = [sys.executable, "tools/meterctl.py", "--endpoint-url", f"http://127.0.0.1:{stack.dynamodb_port}"]
    listing = subprocess.run(
        [*command, "list-keys", "--tenant", tenant["name"]], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert listing.returncode == 0, listing.stderr
    assert tenant["token"].split(":")[0] in listing.stdout
    card = subprocess.run(
        [*command, "set-rate-card", "--tenant", tenant["name"], "message=0.5"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert card.returncode == 0 and json.loads(card.stdout) == {"message": "0.5"}


def test_make_redrive_finds_the_local_queues_and_reports(stack):
    sqs = stack.client("sqs")
    dead_letters = sqs.get_queue_url(QueueName="IngestDeadLetterQueue")["QueueUrl"]
    tenant = f"dl{uuid.uuid4().hex[:6]}"
    token = stack.key(tenant)
    sqs.send_message(
        QueueUrl=dead_letters,
        MessageBody='{"id": "dl-1", "type": "message", "count": 1}',
        MessageAttributes={"tenant": {"DataType": "String", "StringValue": tenant}},
    )
    env = {**os.environ, "LOCAL_STATE_DIR": str(stack.state_dir)}
    for which, moved in (("ingest", 1), ("aggregation", 0)):
        done = subprocess.run(
            [sys.executable, "-m", "local.key", "--redrive", which], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["redriven"] == moved
    url = f"{stack.base_url}/api/v1/usage/list"

    def listed_ids() -> list[str]:
        return [item["id"] for item in requests.get(url, headers=headers(token), timeout=10).json()["items"]]

    assert eventually(lambda: listed_ids() == ["dl-1"])  # requeued, then ingested


def test_make_reconcile_runs_reconciliation_once_against_the_local_tables(stack):
    env = {**os.environ, "LOCAL_STATE_DIR": str(stack.state_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "local.key", "--reconcile"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    report = json.loads(done.stdout)
    assert report["failed"] == 0 and {"uncounted", "drifted", "repaired", "overcounted"} <= set(report)
    # Other tests on this stack may have just sent late events: their windows are rightly kept for a later run.
    assert done.returncode == (3 if report["deferred"] else 0), done.stderr


def test_a_second_runner_on_the_same_state_says_so(stack):
    result = subprocess.run(
        [sys.executable, "-m", "local", "--in-memory", "--state-dir", str(stack.state_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "already running" in result.stderr


def test_ctrl_c_stops_everything_the_runner_started(tmp_path):
    import signal

    from local.services import port_in_use
    from tests.e2e.conftest import runner_command

    command, ports = runner_command(tmp_path)
    runner = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert "is up on" in runner.stdout.readline()
    runner.send_signal(signal.SIGINT)
    assert runner.wait(timeout=30) == 0
    assert not any(port_in_use(p) for p in ports)
    assert not (tmp_path / "run.json").exists()
