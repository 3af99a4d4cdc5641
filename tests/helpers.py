"""Helpers shared by tests: calling the gateway like an HTTP client, draining streams, recounting."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from local.gateway import Gateway, Response
from local.streams import StreamMapping
from local.template import Stack
from meter import dynamo
from meter.records import UsageRecord


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


def identifier_path(identifier: str) -> str:
    """The dates path of an identifier, URL-encoded as the seed's clients do."""
    return f"/api/v1/consumption/identifier/{quote(identifier, safe='')}/dates"


def aggregator(stack: Stack, dead_letters: list[dict[str, Any]] | None = None) -> StreamMapping:
    """The template's stream mapping, delivering to the aggregator in process."""
    source = stack.stream_sources()[0]
    sink = dead_letters.append if dead_letters is not None else (lambda _: None)
    return StreamMapping(
        source, stack.functions()[source.function], stack.physical_name(source.table), sink, retry_delay=0
    )


def recount(records: list[UsageRecord]) -> dict[tuple[str, str], dict[str, int]]:
    """Independent recount of what every aggregate item must hold."""
    totals: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for r in records:
        moment = datetime.fromtimestamp(r.ts / 1000, tz=UTC)
        model, dataset = r.relations.get("model"), r.relations.get("datasetId")
        dims = [f"{r.tenant}#T"]
        dims += [f"{r.tenant}#I#{r.identifier}"] if r.identifier else []
        dims += [f"{r.tenant}#A#{r.agent_id}"] if r.agent_id else []
        dims += [f"{r.tenant}#M#{len(r.agent_id)}:{r.agent_id}#{model}"] if r.agent_id and model else []
        day_only = [f"{r.tenant}#DS#{dataset}"] if dataset else []
        added = Counter({"events": 1, "credits": r.credits, f"n:{r.type}": r.count})
        added["tokens"] += r.count if r.type.startswith("tokens") else 0
        added["messages"] += r.count if r.type == "message" else 0
        added["conversations"] += r.count if r.type == "conversation" else 0
        for pk in dims:
            for sk in (moment.strftime("D#%Y-%m-%d"), moment.strftime("H#%Y-%m-%dT%H")):
                totals[(pk, sk)].update(added)
        for pk in day_only:
            totals[(pk, moment.strftime("D#%Y-%m-%d"))].update(added)
    return {key: {k: v for k, v in c.items() if v} for key, c in totals.items()}


def stored_aggregates(client: Any, table: str, tenant: str | None = None) -> dict[tuple[str, str], dict[str, int]]:
    """Every aggregate item (of one tenant, if given) as ``(pk, sk) → non-zero counters``."""
    items, kwargs = [], {"TableName": table}
    while True:
        page = client.scan(**kwargs)
        items += [dynamo.deserialize(i) for i in page["Items"]]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    mine = [i for i in items if tenant is None or i["pk"].startswith(f"{tenant}#")]
    return {(i.pop("pk"), i.pop("sk")): {k: v for k, v in i.items() if v and isinstance(v, int)} for i in mine}
