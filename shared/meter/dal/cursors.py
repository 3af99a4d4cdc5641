"""Opaque, tamper-evident page cursors, bound to the tenant that was served them and to the
listing that minted them.

A cursor is ``<payload>.<mac>``: the payload is the position (base64url JSON), the MAC an
HMAC-SHA256 over the tenant, the listing (``usage/list``, ``alerts``, one alert's triggers) and
the payload. Editing the position, presenting another tenant's cursor, or one of another
listing fails the MAC check (constant-time) and gets a 400.

The signing key is 32 random bytes created on first use in the Control table (a conditional put,
so concurrent first uses agree) and cached per container. Whoever can read that table can read
the usage itself, so it guards nothing they could not already see.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

from meter.core.caches import memoized
from meter.core.errors import BadRequest
from meter.dal import keys, store

_MAC_BYTES = 16


@memoized(1)
def signing_key() -> bytes:
    """The deployment's cursor signing key (read once per container; created on first use)."""
    return store.control().signing_key(keys.CURSOR_SIGNING_KEY, fresh=secrets.token_bytes(32))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(tenant: str, listing: str, payload: str) -> str:
    digest = hmac.new(signing_key(), f"{tenant}\n{listing}\n{payload}".encode(), hashlib.sha256).digest()
    return _b64(digest[:_MAC_BYTES])


def encode_cursor(tenant: str, listing: str, position: str) -> str:
    """A cursor for ``position`` that only ``tenant`` can use, on ``listing`` only."""
    payload = _b64(json.dumps({"o": position}, separators=(",", ":")).encode())
    return f"{payload}.{_mac(tenant, listing, payload)}"


def decode_cursor(tenant: str, listing: str, cursor: str) -> str:
    """The position a cursor holds; BadRequest if it is malformed, edited, another tenant's, or
    minted by another listing."""
    payload, _, mac = cursor.partition(".")
    # Bytes, not str: compare_digest refuses non-ASCII strings, and a client may send any.
    if payload and mac and hmac.compare_digest(mac.encode(), _mac(tenant, listing, payload).encode()):
        try:
            position = json.loads(_unb64(payload))["o"]
            if isinstance(position, str):
                return position
        except (ValueError, KeyError, TypeError):
            pass
    raise BadRequest("Invalid 'cursor' parameter: use the cursor of the previous page, unchanged")
