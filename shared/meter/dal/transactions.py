"""Transactions that retry what retrying can fix, and name the actions DynamoDB refuses for good.

DynamoDB refuses some writes whatever the retries: an item that would pass 400 KB, an ``ADD``
to an attribute of another type, a number past 38 digits. It says which action in one of two
ways: a ``TransactionCanceledException`` whose reasons mark the action ``ValidationError``
(item size, in DynamoDB and DynamoDB Local), or a plain ``ValidationException`` naming none
(a type mismatch, in DynamoDB Local and moto). In the second case the refused actions are found
by bisection with **probes**: the suspect actions in a transaction with a condition check that
always fails, so a probe never writes anything, and its answer says whether the suspects hold
a refused action (a validation error) or not (only the check failed). A single refused action
among 100 takes 11 to 14 probes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from meter.dal import keys, store

# botocore's standard mode (meter.dal.dynamo: 5 attempts) already retries throttling, 5xx and
# timeouts on every call; only what it does not retry is retried here: a transaction cancelled
# because another one touched its items, or because DynamoDB throttled one item of it (the
# reasons of a TransactionCanceledException), and a single write that met a transaction.
MAX_ATTEMPTS = 8
RETRYABLE = {"TransactionConflictException"}
RETRYABLE_REASONS = {"TransactionConflict", "ThrottlingError"}

Transact = Callable[[list[dict[str, Any]]], None]
T = TypeVar("T")


class Refused(Exception):
    """DynamoDB refuses some actions of a transaction for good; ``indexes`` names them."""

    def __init__(self, indexes: list[int], reason: str):
        super().__init__(f"actions {indexes} refused: {reason}")
        self.indexes = indexes
        self.reason = reason


class NotCommitted(Exception):
    """A transaction could not be written after retries (throttling or conflicts went on)."""


def reasons_of(error: ClientError) -> list[str]:
    """The cancellation reason code of each action (empty unless the transaction was cancelled)."""
    return [str(r.get("Code")) for r in error.response.get("CancellationReasons") or []]


def is_refusal(error: ClientError) -> bool:
    """Whether DynamoDB refused the request's content (no retry can help)."""
    code = error.response["Error"]["Code"]
    return code == "ValidationException" or "ValidationError" in reasons_of(error)


def _is_retryable(error: ClientError) -> bool:
    code = error.response["Error"]["Code"]
    return code in RETRYABLE or bool(RETRYABLE_REASONS & set(reasons_of(error)))


def backoff(attempt: int) -> None:
    """Sleep before retry ``attempt`` (jittered, growing, at most 2 s)."""
    time.sleep(min(2.0, 0.05 * 2**attempt) * random.random())


def retrying(actions: list[dict[str, Any]], transact: Transact = store.transact) -> None:
    """Commit ``actions``, retrying throttling and conflicts with backoff.

    Raises ``Refused`` at once when DynamoDB refuses actions for good (naming them), the
    ``ClientError`` itself when a condition failed, and ``NotCommitted`` when retries run out.
    """
    writing(lambda: transact(actions), lambda error: refused_actions(actions, error, transact))


def writing(write: Callable[[], T], refused: Callable[[ClientError], list[int]] = lambda _: [0]) -> T:
    """Make one write (or transaction), retrying a conflict with a transaction on its items;
    ``Refused`` naming the ``refused`` actions when DynamoDB refuses it for good (action 0 of a
    single write), the ``ClientError`` itself when a condition failed, ``NotCommitted`` when
    retries run out."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            return write()
        except ClientError as error:
            if is_refusal(error):
                raise Refused(refused(error), _message(error)) from None
            if not _is_retryable(error):
                raise
            backoff(attempt)
    raise NotCommitted(f"not written after {MAX_ATTEMPTS} attempts")


def _message(error: ClientError) -> str:
    details = [r.get("Message") for r in error.response.get("CancellationReasons") or [] if r.get("Message")]
    return "; ".join(dict.fromkeys(details)) or error.response["Error"].get("Message", "")


def refused_actions(actions: list[dict[str, Any]], error: ClientError, transact: Transact) -> list[int]:
    """The indexes of the actions DynamoDB refused in ``error`` (by its reasons, else by probes)."""
    reasons = reasons_of(error)
    if "ValidationError" in reasons and len(reasons) == len(actions):
        return [i for i, code in enumerate(reasons) if code == "ValidationError"]
    return _bisect(actions, list(range(len(actions))), transact, known_refused=True)


def _bisect(actions: list[dict[str, Any]], suspects: list[int], transact: Transact, known_refused: bool) -> list[int]:
    if not suspects or not (known_refused or _probe_refuses([actions[i] for i in suspects], transact)):
        return []
    if len(suspects) == 1:
        return suspects
    half = len(suspects) // 2
    return _bisect(actions, suspects[:half], transact, False) + _bisect(actions, suspects[half:], transact, False)


def _probe_refuses(actions: list[dict[str, Any]], transact: Transact) -> bool:
    """Whether DynamoDB refuses any of ``actions``, found without writing: the probe's condition
    check always fails, so the transaction is always cancelled."""
    never = store.control().failing_check()
    for attempt in range(MAX_ATTEMPTS):
        try:
            transact([*actions, never])
        except ClientError as error:
            if is_refusal(error):
                return True
            if _is_retryable(error):
                backoff(attempt)
                continue
            if set(reasons_of(error)) <= {"None", "ConditionalCheckFailed"}:
                return False
            raise
        raise RuntimeError(f"a probe transaction was written: {keys.PROBE_PK} must never exist")
    raise NotCommitted(f"probe not answered after {MAX_ATTEMPTS} attempts")
