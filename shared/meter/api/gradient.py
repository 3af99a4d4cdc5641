"""DigitalOcean Gradient agent usage: ``GET /v2/gen-ai/agents/{uuid}/usage?start=&stop=``.

``usage`` holds token events: type ``tokens.input`` → ``INPUT``, ``tokens.output`` → ``OUTPUT``,
any other ``tokens.<x>`` → ``<X>``, bare ``tokens`` → ``TOTAL``. ``log_insights_usage`` holds
events of type ``log_insights.<x>`` the same way (log-insights tokens). One measurement per
usage type with tokens in the range, sorted by type.
"""

from __future__ import annotations

from meter.api.shapes import AgentUsage
from meter.core.errors import NotFound
from meter.core.timerange import iso, now_ms, parse_range
from meter.dal.dimensions import AGENT, AGENT_TYPE, TYPE_PREFIX
from meter.dal.keys import agent_scoped_key
from meter.reading.queries import daily_totals, daily_totals_of, has_any, listed_values, started, total

GROUPS = {"tokens": "usage", "log_insights": "log_insights_usage"}


def _usage_type(event_type: str) -> tuple[str, str] | None:
    family, _, kind = event_type.partition(".")
    if family not in GROUPS:
        return None
    return GROUPS[family], (kind or "total").upper().replace(".", "_").replace("/", "_")


def agent_usage(tenant: str, agent_uuid: str, params: dict[str, str]) -> AgentUsage:
    """Token measurements of one agent over ``[start, stop]`` (stop defaults to now)."""
    start, end = parse_range("start", params.get("start"), "stop", params.get("stop"), default_end=now_ms() + 1)
    if not has_any(tenant, AGENT, agent_uuid):
        raise NotFound(f"Agent {agent_uuid} not found")
    # the well-known types are counters of the agent's own items, read here while its other types are listed
    listing = started(lambda scope: listed_values(tenant, AGENT_TYPE, start, end, scope=scope), [agent_uuid])
    per_type = {
        name.removeprefix(TYPE_PREFIX): value
        for name, value in total(daily_totals(tenant, AGENT, agent_uuid, start, end)).items()
        if name.startswith(TYPE_PREFIX)
    }
    (listed,) = listing()
    types = {agent_scoped_key(agent_uuid, event_type): event_type for event_type in listed.values()}
    counted = daily_totals_of(tenant, AGENT_TYPE, sorted(types), start, end)
    per_type.update({event_type: total(counted[key])["count"] for key, event_type in types.items()})
    sums: dict[str, dict[str, int]] = {group: {} for group in GROUPS.values()}
    for event_type, tokens in per_type.items():
        placed = _usage_type(event_type)
        if placed and tokens:
            group, usage_type = placed
            sums[group][usage_type] = sums[group].get(usage_type, 0) + tokens
    bounds = {
        "resource_uuid": agent_uuid,
        "start": iso(start if start is not None else 0),
        "stop": iso((end or now_ms() + 1) - 1),
    }
    return {
        group: {"measurements": [{"tokens": n, "usage_type": t} for t, n in sorted(types.items())], **bounds}
        for group, types in sums.items()
    }
