"""API key format: entropy, checksum, offline refusal of malformed keys."""

from __future__ import annotations

import math

import pytest

from meter.api import auth
from meter.api.auth import INVALID_KEY, hash_secret, new_key, parse_token
from meter.core.errors import Unauthorized


@pytest.fixture(autouse=True)
def signing_secret(monkeypatch):
    """The deployment's key-signing secret, without a Control table."""
    monkeypatch.setattr(auth, "signing_secret", lambda: b"s" * 32)


def test_a_key_signed_under_another_deployments_secret_is_refused(monkeypatch):
    public_id, secret = new_key()
    monkeypatch.setattr(auth, "signing_secret", lambda: b"t" * 32)
    with pytest.raises(Unauthorized):
        parse_token(f"Bearer {public_id}:{secret}")


def test_new_keys_are_well_formed_unique_and_high_entropy():
    pairs = {new_key() for _ in range(200)}
    assert len(pairs) == 200
    public_id, secret = next(iter(pairs))
    assert public_id.startswith("pk_") and secret.startswith("sk_")
    assert 30 * math.log2(62) >= 128  # the random part of the secret alone
    assert parse_token(f"Bearer {public_id}:{secret}") == (public_id, secret)


def test_every_single_character_typo_is_refused_offline():
    public_id, secret = new_key()
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for position in range(3, len(secret)):
        replacement = next(c for c in alphabet if c != secret[position])
        typo = secret[:position] + replacement + secret[position + 1 :]
        with pytest.raises(Unauthorized):
            parse_token(f"Bearer {public_id}:{typo}")


def test_a_secret_paired_with_another_public_id_is_refused_offline():
    (public_a, _), (_, secret_b) = new_key(), new_key()
    with pytest.raises(Unauthorized):
        parse_token(f"Bearer {public_a}:{secret_b}")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Basic abc",
        "Bearer pk_x:sk_y",
        "Bearer pk_1234567890abcdef:sk_abcdef1234567890",
        "bearer ::",
        "Bearer pk_ÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄ:sk_" + "a" * 36,
    ],
)
def test_malformed_headers_get_the_one_documented_message(header):
    with pytest.raises(Unauthorized, match=INVALID_KEY):
        parse_token(header)


def test_only_a_hash_of_the_secret_is_derived():
    _, secret = new_key()
    assert secret not in hash_secret(secret) and len(hash_secret(secret)) == 64
