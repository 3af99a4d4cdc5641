"""Pydantic model at the edge: the usage event clients send."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)

from meter.core import ids
from meter.core.localtime import named_zone
from meter.dal.records import RELATION_FIELDS  # noqa: F401  (the fields UsageEvent declares)

MAX_COUNT = 10**15
MAX_META_KEYS = 16

# Ids are NFC-normalized and refuse control and format characters (meter.core.ids).
RelationId = Annotated[StrictStr, Field(min_length=1, max_length=128), AfterValidator(ids.checked)]
# Meta numbers must survive DynamoDB (magnitudes 1e-130 to 1e125) and JavaScript clients (safe integers).
MAX_META_INT = 2**53 - 1
META_VALUE_RULE = (
    f"must be a string of at most 256 characters, a boolean, an integer within ±{MAX_META_INT}, "
    "or a finite number of magnitude 0 or 1e-130 to 1e125"
)


def _meta_value_fits(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return abs(value) <= MAX_META_INT
    if isinstance(value, float):
        return math.isfinite(value) and (value == 0 or 1e-130 <= abs(value) <= 1e125)
    return isinstance(value, str) and len(value) <= 256


def _check_meta_value(value: Any) -> Any:
    if not _meta_value_fits(value):
        raise ValueError(META_VALUE_RULE)
    return value


MetaValue = Annotated[StrictBool | StrictInt | StrictFloat | StrictStr, BeforeValidator(_check_meta_value)]


def _meta_is_small(meta: dict[str, Any]) -> dict[str, Any]:
    if len(meta) > MAX_META_KEYS:
        raise ValueError(f"meta holds at most {MAX_META_KEYS} keys")
    return meta


# A small flat map of strings, numbers and booleans (events, grants).
Meta = Annotated[
    dict[Annotated[StrictStr, Field(min_length=1, max_length=64)], MetaValue], AfterValidator(_meta_is_small)
]


def _known_zone(name: str) -> str:
    if named_zone(name) is None:
        raise ValueError("must be an IANA time zone such as Europe/Berlin")
    return name


ZoneName = Annotated[str, Field(max_length=64), AfterValidator(_known_zone)]  # alerts, allowances


class UsageEvent(BaseModel):
    """One usage event as a client sends it (``POST /v1/events`` or a queue message)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: RelationId
    type: Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")]
    count: Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)]
    timestamp: AwareDatetime | None = None
    identifier: Annotated[StrictStr, Field(min_length=1, max_length=256), AfterValidator(ids.checked)] | None = None
    agentId: RelationId | None = None
    model: RelationId | None = None
    conversationId: RelationId | None = None
    messageId: RelationId | None = None
    taskId: RelationId | None = None
    contactId: RelationId | None = None
    blueprintId: RelationId | None = None
    datasetId: RelationId | None = None
    skillsetId: RelationId | None = None
    abilityId: RelationId | None = None
    reservationId: RelationId | None = None
    credits: Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)] | None = None
    meta: Meta | None = None

    def fingerprint(self) -> str:
        """Hash of what the client sent, so a resend is told apart from a different body.

        Only fields the client set count: an event sent without ``timestamp`` and resent a
        minute later is the same event.
        """
        body = self.model_dump(mode="json", exclude_unset=True)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()
