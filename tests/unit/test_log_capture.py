"""The suite-wide log search (tests/conftest.py) is wired and would catch a leak."""

from __future__ import annotations

from meter.api.auth import new_key
from meter.core.logs import logger
from tests.conftest import leaked_secrets


def test_the_service_logger_is_captured_and_a_leak_would_be_found(no_secret_in_any_log, monkeypatch):
    from meter.api import auth

    monkeypatch.setattr(auth, "signing_secret", lambda: b"s" * 32)
    before = len(no_secret_in_any_log.lines)
    logger.debug("probe", extra={"note": "harmless"})
    assert len(no_secret_in_any_log.lines) == before + 1
    public, secret = new_key()
    assert leaked_secrets([f"authorization: Bearer {public}:{secret}"])
    assert leaked_secrets([f"token {secret}"])
    assert not leaked_secrets(["key pk_0123456789abcdef revoked", no_secret_in_any_log.lines[-1]])
