"""Pydantic model at the edge: the usage event clients send."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
)

from meter.records import RELATION_FIELDS  # noqa: F401  (the fields UsageEvent declares)

MAX_COUNT = 10**15
MAX_META_KEYS = 16

RelationId = Annotated[StrictStr, Field(min_length=1, max_length=128)]
MetaValue = (
    StrictBool
    | StrictInt
    | Annotated[StrictFloat, Field(allow_inf_nan=False)]
    | Annotated[StrictStr, Field(max_length=256)]
)


class UsageEvent(BaseModel):
    """One usage event as a client sends it (``POST /v1/events`` or a queue message)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    type: Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")]
    count: Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)]
    timestamp: AwareDatetime | None = None
    identifier: Annotated[StrictStr, Field(min_length=1, max_length=256)] | None = None
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
    credits: Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)] | None = None
    meta: dict[Annotated[StrictStr, Field(min_length=1, max_length=64)], MetaValue] | None = None

    @field_validator("meta")
    @classmethod
    def _meta_is_small(cls, meta: dict[str, Any] | None) -> dict[str, Any] | None:
        if meta is not None and len(meta) > MAX_META_KEYS:
            raise ValueError(f"meta holds at most {MAX_META_KEYS} keys")
        return meta

    def fingerprint(self) -> str:
        """Hash of what the client sent, so a resend is told apart from a different body.

        Only fields the client set count: an event sent without ``timestamp`` and resent a
        minute later is the same event.
        """
        body = self.model_dump(mode="json", exclude_unset=True)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()
