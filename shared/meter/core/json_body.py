"""JSON request bodies (HTTP and SQS): bounded, with a 400 that says what is wrong with them."""

from __future__ import annotations

import json
import re
from typing import Any

from meter.core.errors import BadRequest, PayloadTooLarge

MAX_BODY_BYTES = 1_000_000
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # \ud800-\udfff, paired or not
LONGEST_NUMBER = 64  # digits: past every numeric field's bound (DynamoDB keeps 38), short of the C parser's 4,300


def _whole_number(digits: str) -> int:
    """A JSON integer, or one past every bound for one too long to convert (so the field's own
    validation refuses it by name, instead of ``int()`` raising past 4,300 digits)."""
    if len(digits) > LONGEST_NUMBER:
        return -(10**LONGEST_NUMBER) if digits.startswith("-") else 10**LONGEST_NUMBER
    return int(digits)


def parse_json(raw: str | bytes) -> Any:
    """``json.loads``, with integers of any length read as ``_whole_number`` does."""
    return json.loads(raw, parse_int=_whole_number)


def decode_json(
    body: str | bytes | None, expected: str = 'an event object or {"events": [...]}', limit: int = MAX_BODY_BYTES
) -> Any:
    """A JSON request body; 400 (413 past the size limit) saying what is wrong with it."""
    raw = body.encode() if isinstance(body, str) else (body or b"")
    if len(raw) > limit:
        raise PayloadTooLarge(f"Request body is {len(raw)} bytes; the limit is {limit}")
    if not raw.strip():
        raise BadRequest(f"Request body is empty: send {expected}")
    try:
        payload = parse_json(raw)
    except UnicodeDecodeError:
        raise BadRequest("Request body is not valid UTF-8") from None
    except (json.JSONDecodeError, RecursionError) as bad:
        raise BadRequest(f"Request body is not valid JSON: {getattr(bad, 'msg', 'too deeply nested')}") from None
    if _SURROGATE_ESCAPE.search(raw):  # rare: only then pay for a second pass over the body
        try:
            json.dumps(payload, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise BadRequest(
                "Request body holds invalid Unicode: an unpaired surrogate escape such as \\ud800"
            ) from None
    return payload
