"""Helpers shared by tests: calling the gateway like an HTTP client, draining streams, recounting."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from unittest import mock
from urllib.parse import quote, urlencode

from botocore.exceptions import ClientError

from local.gateway import Gateway, Response
from local.streams import StreamMapping
from local.template import Stack
from meter.core.timerange import DAY_MS, now_ms
from meter.dal import dynamo
from meter.dal.records import UsageRecord


def call(
    gateway: Gateway,
    method: str,
    path: str,
    token: str | None = None,
    body: Any = None,
    query: dict[str, str] | None = None,
    raw_body: bytes | None = None,
) -> Response:
    """One request through the in-process gateway, shaped as an HTTP client would send it."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    payload = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else b"")
    return gateway.handle(method, path, urlencode(query or {}), headers, payload)


def clock_at_midday(monkeypatch: Any) -> int:
    """Move this process's clock to 12:00 UTC of today (it keeps running from there), so a test whose
    answer depends on the current day cannot straddle midnight; the new now, in ms."""
    real = time.time_ns
    midday = now_ms() // DAY_MS * DAY_MS + DAY_MS // 2
    shift_ns = midday * 1_000_000 - real()
    monkeypatch.setattr(time, "time_ns", lambda: real() + shift_ns)
    monkeypatch.setattr(time, "time", lambda: (real() + shift_ns) / 1e9)
    return midday


def calls_made(operation: str, act: Callable[[], Any]) -> list[dict[str, Any]]:
    """The parameters of every call of a DynamoDB client ``operation`` (``query``, ``update_item``)
    ``act()`` makes, in order (each still answered), each with ``failed``: whether a condition failed."""
    made: list[dict[str, Any]] = []
    real = getattr(dynamo.client(), operation)

    def spy(**kwargs: Any) -> Any:
        made.append({**kwargs, "failed": False})
        try:
            return real(**kwargs)
        except ClientError as error:
            made[-1]["failed"] = error.response["Error"]["Code"] == "ConditionalCheckFailedException"
            raise

    with mock.patch.object(dynamo.client(), operation, side_effect=spy):
        act()
    return made


def queries_made(read: Callable[[], Any]) -> list[dict[str, Any]]:
    """The parameters of every DynamoDB Query ``read()`` makes, in order (each still answered)."""
    return calls_made("query", read)


def sample_event_name(logical_id: str) -> str:
    """The ``events/<name>.json`` sample of a function: ``UsageListFunction`` → ``usage_list``."""
    name = logical_id.removesuffix("Function")
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def sample_event(logical_id: str) -> dict[str, Any]:
    """A function's sample event, its placeholder key swapped for a real one of tenant ``demo``."""
    from local.template import ROOT
    from meter.dal.tenants import SCOPES, ensure_tenant
    from tools.admin import create_key

    ensure_tenant("demo")
    event = json.loads((ROOT / "events" / f"{sample_event_name(logical_id)}.json").read_text())
    if "authorization" in event.get("headers", {}):
        event["headers"]["authorization"] = "Bearer " + create_key("demo", list(SCOPES))
    return event


def identifier_path(identifier: str) -> str:
    """The dates path of an identifier, URL-encoded as the seed's clients do."""
    return f"/api/v1/consumption/identifier/{quote(identifier, safe='')}/dates"


def aggregator(stack: Stack, dead_letters: list[dict[str, Any]] | None = None) -> StreamMapping:
    """The template's stream mapping, delivering to the aggregator in process."""
    source = stack.stream_source_of("AggregateStreamFunction")
    sink = dead_letters.append if dead_letters is not None else (lambda _: None)
    return StreamMapping(
        source, stack.functions()[source.function], stack.physical_name(source.table), sink, retry_delay=0
    )


def set_aside_notices(sqs: Any = None) -> list[dict[str, Any]]:
    """The aggregator's set-aside notices in the failure queue (left in it), of moto or ``sqs``."""
    import boto3

    sqs = sqs or boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="AggregationFailuresQueue")["QueueUrl"]
    found: dict[str, dict[str, Any]] = {}
    while True:
        page = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        new = {m["MessageId"]: json.loads(m["Body"]) for m in page if m["MessageId"] not in found}
        if not new:
            return [body["setAside"] for body in found.values() if "setAside" in body]
        found.update(new)


def stored_records(skip_unreadable: bool = False) -> list[UsageRecord]:
    """Every record of the Records table (without those that are not usage records, if asked)."""
    from meter.core.config import get_settings
    from meter.dal.records import InvalidRecord, record_from_item

    pages = dynamo.client().get_paginator("scan").paginate(TableName=get_settings().records_table)
    found = []
    for item in (dynamo.deserialize(i) for page in pages for i in page["Items"]):
        try:
            found.append(record_from_item(item))
        except InvalidRecord:
            if not skip_unreadable:
                raise
    return found


Bucket = tuple[str, str, Any, str, int]  # tenant, dimension, value, "day" | "hour" | "month", bucket start (ms)
_DIMENSION_NAMES = {"T": "tenant", "I": "identifier", "A": "agent", "M": "agent model",
                    "AY": "agent type", "TY": "type", "DS": "dataset", "SK": "skillset", "AB": "ability",
                    "AC": "agent credits"}  # fmt: skip
BOARDS = {"I": "end user board", "A": "agent board", "M": "agent model board"}


def recount(
    records: list[UsageRecord], cuts: frozenset[int] = frozenset(), roster_sharded_from: int | None = None
) -> dict[Bucket, dict[str, int]]:
    """What every aggregate must hold, from the rules alone (never from storage key strings).

    Every event counts for its tenant, its end user, its agent, its agent's model (agent and model
    both set), its agent's type (a ``tokens…``/``log_insights…`` type that is not well known) and
    its type, per UTC hour and day; for its dataset, skillset and ability per UTC day only. It adds
    one event, its credits, its count, its count under ``n:<type>`` for a well-known type, and its
    count to tokens (types starting with ``tokens``), files (``file``…), messages (``message``) or
    conversations (``conversation``). An hour also holds each of these under ``<name>@1``, ``@2``
    or ``@3`` when the event fell in its second, third or fourth quarter (minute 15, 30, 45 on).
    From the start of a tenant's sharded roster on, the roster holds, per UTC hour and day, each
    agent's credits alone.
    A day of an hourly dimension also holds, for each of the tenant's day ``cuts`` q (a quarter of
    the UTC day), ``>q``: its events, and each of these under ``<name>>q`` when the event fell in
    quarter q of its UTC day or later.
    """
    totals: dict[Bucket, Counter] = defaultdict(Counter)
    for r in records:
        relation = r.relations.get
        hourly = [("tenant", None), ("identifier", relation("identifier")), ("agent", relation("agentId"))]
        hourly.append(("type", r.type))
        if relation("agentId") and relation("model"):
            hourly.append(("agent model", (relation("agentId"), relation("model"))))
        known = r.type in ("tokens", "tokens.input", "tokens.output", "log_insights", "log_insights.input",
                           "log_insights.output")  # fmt: skip
        if relation("agentId") and not known and r.type.split(".")[0] in ("tokens", "log_insights"):
            hourly.append(("agent type", (relation("agentId"), r.type)))
        daily = [(name, relation(f"{name}Id")) for name in ("dataset", "skillset", "ability")]
        added = Counter({"events": 1, "credits": r.credits, "count": r.count})
        added[f"n:{r.type}"] += r.count if known else 0
        added["files"] += r.count if r.type.startswith("file") else 0
        added["tokens"] += r.count if r.type.startswith("tokens") else 0
        added["messages"] += r.count if r.type == "message" else 0
        added["conversations"] += r.count if r.type == "conversation" else 0
        day, hour = r.ts // 86_400_000 * 86_400_000, r.ts // 3_600_000 * 3_600_000
        minute = r.ts % 3_600_000 // 60_000
        in_hour = added + Counter({f"{k}@{minute // 15}": v for k, v in added.items() if minute >= 15})
        quarter_of_day = (r.ts - day) // 900_000
        in_day = added + Counter({f">{q}": 1 for q in cuts})
        in_day += Counter({f"{k}>{q}": v for q in cuts if quarter_of_day >= q for k, v in added.items()})
        for name, value in hourly:
            if name == "tenant" or value is not None:
                totals[(r.tenant, name, value, "day", day)].update(in_day)
                totals[(r.tenant, name, value, "hour", hour)].update(in_hour)
        for name, value in daily:
            if value is not None:
                totals[(r.tenant, name, value, "day", day)].update(added)
        agents_boarded = roster_sharded_from is None or r.ts < roster_sharded_from
        if relation("agentId") and not agents_boarded:
            totals[(r.tenant, "agent credits", relation("agentId"), "day", day)]["credits"] += r.credits
            totals[(r.tenant, "agent credits", relation("agentId"), "hour", hour)]["credits"] += r.credits
        _board(totals, r, (day, hour), quarter_of_day, cuts, agents_boarded)
    return {key: {k: v for k, v in c.items() if v} for key, c in totals.items() if +c}


def _board(
    totals: dict[Bucket, Counter], r: UsageRecord, buckets: tuple[int, int], quarter: int, cuts: frozenset[int],
    agents: bool,
) -> None:  # fmt: skip
    """A tenant's boards hold, per UTC day and month, all its events (``events``) and each end user's
    credits, each agent's, and each agent's model's, under ``=<value>`` (an agent's model:
    ``<len(agent)>:<agent>#<model>``); the agents' board also per UTC hour. A day board also holds
    ``>q`` (events) and ``q=<value>`` (credits from quarter q of the day on) for each day cut q.
    Events from the start of a tenant's sharded roster on add to its end users' board only."""
    day, hour = buckets
    agent, model = r.relations.get("agentId"), r.relations.get("model")
    values = {"end user board": r.relations.get("identifier"), "agent board": agent,
              "agent model board": f"{len(agent)}:{agent}#{model}" if agent and model else None}  # fmt: skip
    moment = datetime.fromtimestamp(r.ts / 1000, UTC)
    month = int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp() * 1000)
    for board, value in values.items():
        if board != "end user board" and not agents:
            continue
        credited = Counter({f"={value}": r.credits}) if value else Counter()
        totals[(r.tenant, board, None, "month", month)].update(Counter(events=1) + credited)
        in_day = Counter(events=1) + credited + Counter({f">{q}": 1 for q in cuts})
        in_day += Counter({f"{q}={value}": r.credits for q in cuts if value and quarter >= q})
        totals[(r.tenant, board, None, "day", day)].update(in_day)
        if board == "agent board":
            totals[(r.tenant, board, None, "hour", hour)].update(Counter(events=1) + credited)


def _length_prefixed(value: str) -> tuple[str, str]:
    """``<len(agent)>:<agent>#<value>`` (an agent's model or type; agent ids may hold '#')."""
    length, rest = value.split(":", 1)
    return rest[: int(length)], rest[int(length) + 1 :]


def meaning(pk: str, sk: str) -> Bucket:
    """What an aggregate item is the total of, decoded from the documented key formats alone
    (never through the store layer's parser, so a builder and parser that agree on a wrong
    format still fail): ``pk = <tenant>#<code>[#<value>]``; ``sk = D#YYYY-MM-DD`` or
    ``H#YYYY-MM-DDTHH``, and for the roster (code ``AC``) that bucket, ``#``, the agent; a board
    (``<tenant>#BOARD#<code>``) is its period (``D#YYYY-MM-DD``, ``M#YYYY-MM`` or
    ``H#YYYY-MM-DDTHH``), ``#``, a bucket."""
    tenant, code, *rest = pk.split("#", 2)
    if code == "BOARD":  # a board: its period, '#', a bucket (every bucket of a period sums)
        period, _, _ = sk[2:].partition("#")
        granularity = {"D": "day", "M": "month", "H": "hour"}[sk[0]]
        moment = datetime.strptime(period, {"day": "%Y-%m-%d", "month": "%Y-%m", "hour": "%Y-%m-%dT%H"}[granularity])
        return (tenant, BOARDS[rest[0]], None, granularity, int(moment.replace(tzinfo=UTC).timestamp() * 1000))
    daily = sk.startswith("D#")
    bucket, _, roster_agent = sk[2:].partition("#")
    moment = datetime.strptime(bucket, "%Y-%m-%d" if daily else "%Y-%m-%dT%H").replace(tzinfo=UTC)
    value: Any = rest[0] if rest else None
    if code in ("M", "AY"):
        value = _length_prefixed(value)
    elif code == "AC":
        value = roster_agent
    return (tenant, _DIMENSION_NAMES[code], value, "day" if daily else "hour", int(moment.timestamp() * 1000))


def stored_aggregates(client: Any, table: str, tenant: str | None = None) -> dict[Bucket, dict[str, int]]:
    """Every aggregate bucket (of one tenant, if given) by what it totals, with its non-zero counters
    (a roster entry of a day that its sharding split is in two partitions: their sum)."""
    pages = client.get_paginator("scan").paginate(TableName=table)
    items = [dynamo.deserialize(item) for page in pages for item in page["Items"]]
    found: dict[Bucket, Counter] = defaultdict(Counter)
    for item in items:
        if not item["sk"].startswith(("D#", "H#", "M#")) or item["pk"].endswith("#SEEN"):
            continue  # a last-seen mark or a tally of distinct values (see distinct_counts)
        bucket = meaning(item.pop("pk"), item.pop("sk"))
        counters = {k: v for k, v in item.items() if v and isinstance(v, int)}
        if (tenant is None or bucket[0] == tenant) and counters:
            found[bucket].update(counters)
    return {bucket: dict(counters) for bucket, counters in found.items()}


def without_boards(buckets: dict[Bucket, dict[str, int]]) -> dict[Bucket, dict[str, int]]:
    """Every bucket but the boards' (reconciliation leaves boards as the stream wrote them)."""
    return {bucket: totals for bucket, totals in buckets.items() if bucket[1] not in BOARDS.values()}


def boards_within(stored: dict[Bucket, dict[str, int]], recounted: dict[Bucket, dict[str, int]]) -> bool:
    """Whether every stored board counter is at most its recount (what the stream wrote of it)."""
    boards = [(bucket, totals) for bucket, totals in stored.items() if bucket[1] in BOARDS.values()]
    return all(n <= recounted.get(bucket, {}).get(name, 0) for bucket, totals in boards for name, n in totals.items())


def distinct_since(records: list[UsageRecord], tenant: str, day_start: int) -> dict[str, int]:
    """From the rules: how many distinct end users, datasets, skillsets and abilities the tenant's
    records name from the UTC day starting at ``day_start`` on."""
    fields = {"I": "identifier", "DS": "datasetId", "SK": "skillsetId", "AB": "abilityId"}
    since = [r for r in records if r.tenant == tenant and r.ts >= day_start]
    return {code: len({r.relations[field] for r in since if r.relations.get(field)}) for code, field in fields.items()}
