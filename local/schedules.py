"""EventBridge Scheduler emulation: invoke each scheduled function of the template on its
``cron(...)`` or ``rate(...)`` expression, as ``make run`` does for reconciliation."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from local.lambda_runtime import invoke
from local.template import Function
from meter.core.logs import logger

_RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86_400, "days": 86_400}


def next_fire(expression: str, after: datetime) -> datetime:
    """When a schedule expression fires next after ``after`` (UTC)."""
    rate = re.fullmatch(r"rate\((\d+) (\w+)\)", expression)
    if rate:
        return after + timedelta(seconds=int(rate.group(1)) * _RATE_UNITS[rate.group(2)])
    cron = re.fullmatch(r"cron\((.+)\)", expression)
    if not cron:
        raise ValueError(f"Unsupported schedule expression {expression!r}")
    minute, hour, day, month, weekday, _year = cron.group(1).split()
    # AWS cron has a year field and '?' for "any"; croniter takes the classic five fields.
    classic = " ".join(field.replace("?", "*") for field in (minute, hour, day, month, weekday))
    return croniter(classic, after).get_next(datetime)


class Schedule:
    """One scheduled function, fired by a thread until stopped."""

    def __init__(self, function: Function, expression: str, clock: Any = lambda: datetime.now(UTC)):
        self.function, self.expression, self.clock = function, expression, clock

    def fire(self) -> Any:
        """Invoke the function once, as the scheduler would (failures are logged, not raised)."""
        try:
            return invoke(self.function, {"time": self.clock().isoformat()})
        except Exception:
            logger.exception("scheduled invocation failed", extra={"function": self.function.logical_id})
            return None

    def run(self, stop: threading.Event) -> None:
        """Fire at every scheduled time until ``stop`` is set."""
        while not stop.is_set():
            due = next_fire(self.expression, self.clock())
            if stop.wait(max(0.0, (due - self.clock()).total_seconds())):
                return
            self.fire()
