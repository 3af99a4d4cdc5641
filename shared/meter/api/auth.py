"""API keys and authorization: the shared auth layer.

A key is ``pk_<id>:sk_<secret><check>``. The public id names the key item; the secret carries
178 random bits; ``check`` is an HMAC-SHA256 (truncated to 6 base62 characters, ~36 bits) over
``pk:secret`` under the deployment's key-signing secret. So a mistyped key, or one made up by
someone without that secret, is refused without reading any key or tenant (the signing secret
itself is read once per container). Only the SHA-256 of the secret is stored (a fast hash
suffices for random secrets) and it is compared in constant time.

Every handler authenticates in process (``principal_from_event``), not an API Gateway
authorizer: an HTTP API authorizer with an identity source answers a request without the
header itself, with ``{"message": "Unauthorized"}``, where the AgentsGT contract promises
``{"error": "Invalid or missing API key"}``. Verdicts (admitted or refused) are cached per
container for ``AUTH_CACHE_SECONDS``, keyed by a hash of the whole header, which is also how
long a revoked key keeps working.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import time
from dataclasses import dataclass
from typing import Any

from meter.core.caches import Cache, memoized
from meter.core.config import get_settings
from meter.core.errors import Forbidden, Unauthorized
from meter.dal import keys, store

INVALID_KEY = "Invalid or missing API key"
_ALPHABET = string.digits + string.ascii_letters
_PUBLIC_LEN, _SECRET_LEN, _CHECKSUM_LEN = 16, 30, 6


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant a valid key belongs to, and what it may do."""

    tenant: str
    scopes: frozenset[str]
    key_id: str
    rate_limit: int | None = None  # requests per second; None = the deployment's default


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits))


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


@memoized()
def signing_secret() -> bytes:
    """The deployment's key-signing secret (read once per container; created on first use)."""
    return store.control().signing_key(keys.API_KEY_SIGNING_KEY, fresh=secrets.token_bytes(32))


def _checksum(public_id: str, body: str) -> str:
    digest = hmac.new(signing_secret(), f"{public_id}:{body}".encode(), hashlib.sha256).digest()
    return _base62(int.from_bytes(digest[:8], "big"), _CHECKSUM_LEN)


def new_key() -> tuple[str, str]:
    """A fresh ``(public_id, secret)`` pair."""
    public_id = f"pk_{_random(_PUBLIC_LEN)}"
    body = _random(_SECRET_LEN)
    return public_id, f"sk_{body}{_checksum(public_id, body)}"


def hash_secret(secret: str) -> str:
    """What is stored of a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(header: str | None) -> tuple[str, str]:
    """``(public_id, secret)`` from an Authorization header, checked offline; else Unauthorized."""
    scheme, _, token = (header or "").strip().partition(" ")
    public_id, _, secret = token.strip().partition(":")
    well_formed = (
        scheme.lower() == "bearer"
        and len(public_id) == 3 + _PUBLIC_LEN
        and public_id.startswith("pk_")
        and len(secret) == 3 + _SECRET_LEN + _CHECKSUM_LEN
        and secret.startswith("sk_")
        and all(c in _ALPHABET for c in public_id[3:] + secret[3:])
    )
    if not well_formed:
        raise Unauthorized(INVALID_KEY)
    body, checksum = secret[3 : 3 + _SECRET_LEN], secret[3 + _SECRET_LEN :]
    if not hmac.compare_digest(checksum, _checksum(public_id, body)):
        raise Unauthorized(INVALID_KEY)
    return public_id, secret


def authenticate(header: str | None) -> Principal:
    """The principal of a valid, unrevoked key; Unauthorized with one message otherwise."""
    public_id, secret = parse_token(header)
    key = store.tenants().api_key(public_id)
    stored_hash = key.secret_hash if key else hash_secret("")
    matches = hmac.compare_digest(stored_hash, hash_secret(secret))
    if not key or not matches or key.revoked_at:
        raise Unauthorized(INVALID_KEY)
    return Principal(tenant=key.tenant, scopes=key.scopes, key_id=public_id, rate_limit=key.rate_limit)


_clock = time.monotonic
_verdicts = Cache(10_000, seconds=lambda: get_settings().auth_cache_seconds, timer=lambda: _clock())
_UNKNOWN = object()


def authenticate_cached(header: str | None) -> Principal:
    """``authenticate`` with this container's cache of recent verdicts (admitted and refused)."""
    digest = hashlib.sha256((header or "").encode()).digest()
    verdict = _verdicts.get(digest, _UNKNOWN)
    if verdict is _UNKNOWN:
        try:
            verdict = authenticate(header)
        except Unauthorized as refused:
            verdict = refused.message
        if get_settings().auth_cache_seconds:
            _verdicts.put(digest, verdict)
    if isinstance(verdict, str):
        raise Unauthorized(verdict)
    return verdict


def principal_from_event(event: dict[str, Any], scope: str) -> Principal:
    """The caller of an API Gateway event (its ``Authorization`` header), required to hold ``scope``."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    principal = authenticate_cached(headers.get("authorization"))
    if scope not in principal.scopes:
        raise Forbidden(f"This API key lacks the '{scope}' scope")
    return principal
