"""API keys and authorization: the shared auth layer.

A key is ``pk_<id>:sk_<secret>``. The public id names the key item; the secret carries 178
bits of entropy and a CRC32 checksum over ``pk:secret`` (as GitHub's token format does), so a
mistyped or forged key is refused before any database read. Only the SHA-256 of the secret is
stored (a fast hash suffices for random secrets) and it is compared in constant time.

The REQUEST authorizer answers ``isAuthorized: true`` with either the principal or the reason
the key was refused in its context; handlers then answer 401/403 with the ``{"error": ...}``
bodies the AgentsGT contract documents, which API Gateway's own deny response cannot carry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import zlib
from dataclasses import dataclass
from typing import Any

from meter import keys, store
from meter.errors import BadRequest, Forbidden, NotFound, Unauthorized
from meter.tenants import SCOPES, ensure_tenant
from meter.timerange import now_ms

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


def _checksum(public_id: str, body: str) -> str:
    return _base62(zlib.crc32(f"{public_id}:{body}".encode()), _CHECKSUM_LEN)


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
    item = store.tenants().get({"pk": {"S": keys.api_key_pk(public_id)}})
    stored_hash = item["secretHash"] if item else hash_secret("")
    matches = hmac.compare_digest(stored_hash, hash_secret(secret))
    if not item or not matches or item.get("revokedAt"):
        raise Unauthorized(INVALID_KEY)
    limit = item.get("rateLimit")
    return Principal(
        tenant=item["tenant"],
        scopes=frozenset(item.get("scopes", [])),
        key_id=public_id,
        rate_limit=int(limit) if limit is not None else None,
    )


def authorizer_context(header: str | None) -> dict[str, Any]:
    """The HTTP API simple response for one Authorization header."""
    try:
        principal = authenticate(header)
    except Unauthorized as refused:
        return {"isAuthorized": True, "context": {"authError": refused.message}}
    context = {"tenant": principal.tenant, "scopes": ",".join(sorted(principal.scopes)), "keyId": principal.key_id}
    if principal.rate_limit is not None:
        context["rateLimit"] = principal.rate_limit
    return {"isAuthorized": True, "context": context}


def principal_from_event(event: dict[str, Any], scope: str) -> Principal:
    """The caller of an API Gateway event, required to hold ``scope``.

    Fails closed: no authorizer context (a route deployed without the authorizer) is a 401.
    """
    context = ((event.get("requestContext") or {}).get("authorizer") or {}).get("lambda") or {}
    if context.get("authError") or not context.get("tenant"):
        raise Unauthorized(context.get("authError") or INVALID_KEY)
    scopes = frozenset(filter(None, str(context.get("scopes", "")).split(",")))
    if scope not in scopes:
        raise Forbidden(f"This API key lacks the '{scope}' scope")
    limit = context.get("rateLimit")
    return Principal(
        tenant=context["tenant"],
        scopes=scopes,
        key_id=context.get("keyId", ""),
        rate_limit=int(limit) if limit is not None else None,
    )


def create_key(tenant: str, scopes: list[str], name: str = "", rate_limit: int | None = None) -> str:
    """Create a key for ``tenant`` (creating the tenant too); returns the full token once.

    ``rate_limit`` (requests per second, 0 = unlimited) overrides the deployment's default.
    """
    if rate_limit is not None and rate_limit < 0:
        raise BadRequest("Invalid rate limit: use a whole number of requests per second, 0 for unlimited")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise BadRequest(f"Invalid scopes {unknown or scopes}: choose from {', '.join(SCOPES)}")
    ensure_tenant(tenant)
    public_id, secret = new_key()
    item = {
        "pk": keys.api_key_pk(public_id),
        "tenant": tenant,
        "scopes": sorted(set(scopes)),
        "secretHash": hash_secret(secret),
        "createdAt": now_ms(),
        "name": name or None,
        "rateLimit": rate_limit,
    }
    if not store.tenants().put_new(item):
        raise RuntimeError("a fresh key id is already taken")  # 95 random bits: never in practice
    return f"{public_id}:{secret}"


def list_keys(tenant: str | None = None) -> list[dict[str, Any]]:
    """Every key (optionally of one tenant), without secret hashes. Admin use: scans the table."""
    found = []
    for item in store.tenants().with_prefix(keys.api_key_pk("")):
        if tenant is None or item["tenant"] == tenant:
            item.pop("secretHash", None)
            found.append({"keyId": keys.api_key_id(item.pop("pk")), **item})
    return sorted(found, key=lambda k: (k["tenant"], k["createdAt"]))


def revoke_key(public_id: str) -> None:
    """Revoke a key; it stops working once cached authorizer results expire."""
    store.tenants().update_existing(
        {"pk": {"S": keys.api_key_pk(public_id)}},
        "SET revokedAt = if_not_exists(revokedAt, :now)",
        {":now": {"N": str(now_ms())}},
        NotFound(f"Unknown key '{public_id}'"),
    )
