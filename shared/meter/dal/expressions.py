"""Update, condition and key expressions with their placeholders, for the low-level client.

``Update().set("seq", last).add("events", n)`` and ``attr("seq").eq(seen) & attr("pl").absent()``
render into one request's ``UpdateExpression``, ``ConditionExpression``, ``KeyConditionExpression``
or ``FilterExpression`` with one set of placeholders (``#a0``, ``:v0``), so nothing numbers
placeholders by hand and no two collide. Only the data-access package uses this module.

Why not ``boto3.dynamodb.conditions``: its builder reads every ``.`` in a name as a document path,
and counters are named ``n:tokens.input`` (a top-level attribute); its placeholders also cannot be
shared with an update expression, which boto3 has no builder for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meter.dal import dynamo


class Placeholders:
    """The names and values one request's expressions use, each given a placeholder once."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}  # placeholder → attribute
        self._of_name: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attribute: str) -> str:
        if attribute not in self._of_name:
            self._of_name[attribute] = f"#a{len(self._of_name)}"
            self.names[self._of_name[attribute]] = attribute
        return self._of_name[attribute]

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder


class Condition:
    """A condition (or key condition) on top-level attributes; combine with ``&`` and ``|``."""

    def __init__(self, render: Callable[[Placeholders], str]):
        self.render = render

    def __and__(self, other: Condition) -> Condition:
        return Condition(lambda p: f"({self.render(p)} AND {other.render(p)})")

    def __or__(self, other: Condition) -> Condition:
        return Condition(lambda p: f"({self.render(p)} OR {other.render(p)})")


def every(conditions: list[Condition]) -> Condition | None:
    """All of ``conditions`` (None for none)."""
    combined = None
    for condition in conditions:
        combined = condition if combined is None else combined & condition
    return combined


class attr:  # lower case: it reads as the attribute it names, attr("seq").eq(seen)
    """One top-level attribute, to compare in a condition."""

    def __init__(self, name: str):
        self.attribute = name

    def _compare(self, operator: str, value: Any) -> Condition:
        return Condition(lambda p: f"{p.name(self.attribute)} {operator} {p.value(value)}")

    def eq(self, value: Any) -> Condition:
        return self._compare("=", value)

    def ne(self, value: Any) -> Condition:
        return self._compare("<>", value)

    def gt(self, value: Any) -> Condition:
        return self._compare(">", value)

    def lt(self, value: Any) -> Condition:
        return self._compare("<", value)

    def size_below(self, limit: int) -> Condition:
        """The attribute (a set, list or string) holds fewer than ``limit`` members."""
        return Condition(lambda p: f"size({p.name(self.attribute)}) < {p.value(limit)}")

    def between(self, low: Any, high: Any) -> Condition:
        return Condition(lambda p: f"{p.name(self.attribute)} BETWEEN {p.value(low)} AND {p.value(high)}")

    def begins_with(self, prefix: str) -> Condition:
        return Condition(lambda p: f"begins_with({p.name(self.attribute)}, {p.value(prefix)})")

    def exists(self) -> Condition:
        return Condition(lambda p: f"attribute_exists({p.name(self.attribute)})")

    def absent(self) -> Condition:
        return Condition(lambda p: f"attribute_not_exists({p.name(self.attribute)})")


class Update:
    """One UpdateExpression, clause by clause."""

    def __init__(self) -> None:
        self._clauses: list[tuple[str, Callable[[Placeholders], str]]] = []

    def _clause(self, verb: str, render: Callable[[Placeholders], str]) -> Update:
        self._clauses.append((verb, render))
        return self

    def set(self, attribute: str, value: Any) -> Update:
        """``attribute = value``."""
        return self._clause("SET", lambda p: f"{p.name(attribute)} = {p.value(value)}")

    def set_if_absent(self, attribute: str, value: Any) -> Update:
        """``attribute = value`` unless the item already has the attribute."""
        return self._clause(
            "SET", lambda p: f"{p.name(attribute)} = if_not_exists({p.name(attribute)}, {p.value(value)})"
        )

    def add(self, attribute: str, value: Any) -> Update:
        """Add a number to a counter (created at 0), or members to a set."""
        return self._clause("ADD", lambda p: f"{p.name(attribute)} {p.value(value)}")

    def remove(self, *attributes: str) -> Update:
        """Remove attributes."""
        for attribute in attributes:
            self._clause("REMOVE", lambda p, attribute=attribute: p.name(attribute))
        return self

    def delete(self, attribute: str, members: set[str]) -> Update:
        """Remove members from a set."""
        return self._clause("DELETE", lambda p: f"{p.name(attribute)} {p.value(members)}")

    def render(self, placeholders: Placeholders) -> str:
        by_verb: dict[str, list[str]] = {}
        for verb, render in self._clauses:
            by_verb.setdefault(verb, []).append(render(placeholders))
        return " ".join(f"{verb} {', '.join(parts)}" for verb, parts in by_verb.items())


def request(
    update: Update | None = None,
    condition: Condition | None = None,
    key: Condition | None = None,
    where: Condition | None = None,
) -> dict[str, Any]:
    """The expression parameters of one request: an ``update`` and its ``condition``, or a Query's
    ``key`` condition and its ``where`` filter, with the placeholders they use."""
    placeholders = Placeholders()
    params = {
        parameter: expression.render(placeholders)
        for parameter, expression in (
            ("UpdateExpression", update),
            ("ConditionExpression", condition),
            ("KeyConditionExpression", key),
            ("FilterExpression", where),
        )
        if expression is not None
    }
    if placeholders.names:
        params["ExpressionAttributeNames"] = placeholders.names
    if placeholders.values:
        params["ExpressionAttributeValues"] = dynamo.serialize(placeholders.values)
    return params
