"""Domain errors. Each carries its HTTP status; ``meter.api.http`` is the one place that renders them."""

from __future__ import annotations

from typing import Any


class MeterError(Exception):
    """Base of every error a client may see; ``status`` is the HTTP status it maps to."""

    status = 500

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None, **fields: Any):
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.fields = fields  # more top-level fields of the error body (a 402 names the subject)
        self.headers: dict[str, str] = {}


class BadRequest(MeterError):
    """The request is malformed or a field is invalid (the message names the field)."""

    status = 400


class Unauthorized(MeterError):
    """No usable API key: missing, malformed, unknown, revoked or wrong secret."""

    status = 401


class Forbidden(MeterError):
    """A valid key that lacks the scope the route needs."""

    status = 403


class NotFound(MeterError):
    """Nothing of this tenant matches (never reveals whether another tenant has it)."""

    status = 404


class PaymentRequired(MeterError):
    """A reservation a subject has not the credits for (the body names the subject and what it has)."""

    status = 402


class Conflict(MeterError):
    """An event id is already stored with a different body."""

    status = 409


class TooManyRequests(MeterError):
    """The API key is over its rate limit; ``Retry-After`` says when to try again."""

    status = 429

    def __init__(self, message: str, retry_after_seconds: int):
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_seconds)}


class PayloadTooLarge(MeterError):
    """A batch over the event-count or byte limit."""

    status = 413


class UnsupportedMediaType(MeterError):
    """A body in a format the route does not read (the message lists the ones it does)."""

    status = 415


class Unavailable(MeterError):
    """Storage refused the write after retries; resending is safe (idempotent ids)."""

    status = 503
