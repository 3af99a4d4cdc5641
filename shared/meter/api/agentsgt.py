"""AgentsGT consumption API: ``{"data": ...}`` envelopes, credits per day, agent, model, org."""

from __future__ import annotations

from meter.api.shapes import AgentsCredits, DailyCredits, ModelsCredits, OrganizationSummary
from meter.core.errors import NotFound
from meter.core.timerange import iso, now_ms, parse_range
from meter.dal.dimensions import AGENT, AGENT_MODEL, IDENTIFIER, TENANT, Dimension, agent_scoped_key
from meter.reading.agents import agent_credits
from meter.reading.queries import daily_totals, daily_totals_of, listed_values, total


def _range(params: dict[str, str]) -> tuple[int | None, int | None]:
    return parse_range("from", params.get("from"), "to", params.get("to"))


def _dates(tenant: str, dimension: Dimension, value: str, params: dict[str, str], missing: str) -> DailyCredits:
    start, end = _range(params)
    days = daily_totals(tenant, dimension, value, start, end)
    data = [{"date": day, "total_credits": t["credits"]} for day, t in sorted(days.items()) if t["credits"]]
    if not data:
        raise NotFound(missing)
    return {"data": data}


def identifier_dates(tenant: str, identifier: str, params: dict[str, str]) -> DailyCredits:
    """``GET /api/v1/consumption/identifier/{identifier}/dates``: credits per day, ascending."""
    return _dates(tenant, IDENTIFIER, identifier, params, "No consumption data found for this identifier")


def agent_dates(tenant: str, agent_id: str, params: dict[str, str]) -> DailyCredits:
    """``GET /api/v1/consumption/agent/{agentId}/dates``: credits per day of one agent."""
    return _dates(tenant, AGENT, agent_id, params, "No consumption data found for this agent")


def agent_models(tenant: str, agent_id: str, params: dict[str, str]) -> ModelsCredits:
    """``GET /api/v1/consumption/agent/{agentId}/models``: credits per model of one agent.

    Models are the events' ``model`` values (``name`` repeats the id: we hold no display names),
    most credits first.
    """
    start, end = _range(params)
    listed = listed_values(tenant, AGENT_MODEL, start, end, scope=agent_id).values()
    models = {agent_scoped_key(agent_id, model): model for model in listed}
    totals = daily_totals_of(tenant, AGENT_MODEL, sorted(models), start, end)
    rows = [
        {"model_id": model, "name": model, "total_credits": credits}
        for key, model in models.items()
        if (credits := total(totals[key])["credits"])
    ]
    if not rows:
        raise NotFound("No consumption data found for this agent")
    return {"data": sorted(rows, key=lambda r: (-r["total_credits"], r["model_id"]))}


def _own_organization(tenant: str, org_id: str) -> None:
    if org_id != tenant:
        raise NotFound("Organization not found")


def organization_summary(tenant: str, org_id: str, params: dict[str, str]) -> OrganizationSummary:
    """``GET /api/v1/consumption/organization/{orgId}/summary``: total credits of the tenant."""
    _own_organization(tenant, org_id)
    start, end = _range(params)
    days = daily_totals(tenant, TENANT, "", start, end)
    first = min((day for day, t in days.items() if t["credits"]), default=None)
    period_from = iso(start) if start is not None else (f"{first}T00:00:00Z" if first else None)
    period_to = iso((end if end is not None else now_ms() + 1) - 1)
    return {
        "data": {
            "organization_id": org_id,
            "total_consumption": total(days)["credits"],
            "period": {"from": period_from, "to": period_to},
        }
    }


def organization_agents(tenant: str, org_id: str, params: dict[str, str]) -> AgentsCredits:
    """``GET /api/v1/consumption/organization/{orgId}/agents``: credits per agent, most first."""
    _own_organization(tenant, org_id)
    start, end = _range(params)
    rows = [{"agent_id": a, "total_credits": n} for a, n in agent_credits(tenant, start, end).items()]
    return {"data": sorted(rows, key=lambda r: (-r["total_credits"], r["agent_id"]))}
