"""What usage is aggregated by: each dimension's keys, granularity and listing.

Aggregate items are keyed ``pk = <tenant>#<code>[#<value>]``, ``sk = D#<day>`` or
``H#<day>T<hour>``. Day items of *listed* dimensions also carry ``lk`` (list key) and ``v`` (the
value), which the Aggregates table's ``ByList`` index uses to list, say, every agent of a tenant
active in a date range without knowing their ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from meter import keys
from meter.keys import model_key

if TYPE_CHECKING:
    from meter.records import UsageRecord

TYPE_PREFIX = "n:"


@dataclass(frozen=True)
class Dimension:
    """One way of slicing usage."""

    code: str
    value_of: Callable[[UsageRecord], str | None]
    hourly: bool
    listed: bool
    list_scope: Callable[[UsageRecord], str] = lambda _: ""

    def pk(self, tenant: str, key: str) -> str:
        """Partition key of this dimension's aggregates for one value key."""
        return keys.aggregate_pk(tenant, self.code, key)

    def list_key(self, tenant: str, scope: str = "") -> str:
        """The ``ByList`` partition listing this dimension's values (within ``scope``)."""
        return keys.list_key(tenant, self.code, scope)


def _agent_model(record: UsageRecord) -> str | None:
    agent, model = record.agent_id, record.relations.get("model")
    return model_key(agent, model) if agent is not None and model is not None else None


TENANT = Dimension("T", lambda r: "", hourly=True, listed=False)
IDENTIFIER = Dimension("I", lambda r: r.identifier, hourly=True, listed=True)
AGENT = Dimension("A", lambda r: r.agent_id, hourly=True, listed=True)
AGENT_MODEL = Dimension("M", _agent_model, hourly=True, listed=True, list_scope=lambda r: r.agent_id or "")
DATASET = Dimension("DS", lambda r: r.relations.get("datasetId"), hourly=False, listed=True)
SKILLSET = Dimension("SK", lambda r: r.relations.get("skillsetId"), hourly=False, listed=True)
ABILITY = Dimension("AB", lambda r: r.relations.get("abilityId"), hourly=False, listed=True)

DIMENSIONS = (TENANT, IDENTIFIER, AGENT, AGENT_MODEL, DATASET, SKILLSET, ABILITY)
BY_CODE = {dimension.code: dimension for dimension in DIMENSIONS}


def display_value(dimension: Dimension, record: UsageRecord) -> str:
    """The human value stored as ``v`` on listed day items (the model id for agent models)."""
    return record.relations.get("model", "") if dimension is AGENT_MODEL else dimension.value_of(record) or ""


def contribution_of(event_type: str, count: int, credits: int) -> Counter[str]:
    """What an event of this type, count and credits adds to an aggregate.

    ``tokens`` sums every type starting with ``tokens`` (``tokens.input``, ``tokens.output``…);
    ``messages`` counts type ``message``; ``conversations`` counts type ``conversation``.
    """
    added: Counter[str] = Counter(events=1, credits=credits)
    added[TYPE_PREFIX + event_type] += count
    if event_type.startswith("tokens"):
        added["tokens"] += count
    elif event_type == "message":
        added["messages"] += count
    elif event_type == "conversation":
        added["conversations"] += count
    return added
