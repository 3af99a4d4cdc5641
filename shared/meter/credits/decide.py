"""One decision's transaction: committed, or the reasons it was cancelled (a version moved)."""

from __future__ import annotations

import random
import time
from typing import Any

from botocore.exceptions import ClientError

from meter.core.errors import Unavailable
from meter.dal import transactions

MAX_ROUNDS = 200  # read, decide, write: each round lost means another decision was written first


def commit(actions: list[dict[str, Any]]) -> list[str] | None:
    """Write a decision; None when it held, else each action's cancellation reason."""
    try:
        transactions.retrying(actions)
    except transactions.NotCommitted:
        return ["TransactionConflict"] * len(actions)
    except ClientError as error:
        reasons = transactions.reasons_of(error)
        if reasons:
            return reasons
        raise
    return None


def pause(round_number: int) -> None:
    """Jittered backoff before deciding again (another writer moved the account)."""
    time.sleep(min(0.05, 0.002 * 2**round_number) * random.random())


def gave_up(what: str) -> Unavailable:
    return Unavailable(f"{what}: the account kept changing under the decision; retry (the id keeps it once)")
