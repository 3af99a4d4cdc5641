"""Every log line names the function that wrote it, though the local runner runs functions in
threads of one process (Powertools once kept the Lambda context keys on the shared logger, so
the aggregator's errors could appear under a query handler's ``function_name``)."""

from __future__ import annotations

import json
import logging
import threading

from local.lambda_runtime import LambdaContext
from meter.core.logs import logger, observed
from meter.reading.queries import in_parallel


class FormattedLines(logging.Handler):
    """The service's lines as Powertools formats them (in the emitting thread, as in Lambda)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(logger.registered_formatter.format(record)))


def _capture() -> FormattedLines:
    handler = FormattedLines()
    logger._logger.addHandler(handler)
    return handler


def test_a_function_logging_while_another_runs_is_named_by_its_own_lines():
    lines = _capture()
    started, other_done = threading.Event(), threading.Event()

    @observed
    def slow(event, context):
        started.set()
        other_done.wait(5)  # another function starts and logs meanwhile
        logger.error("slow function's error")
        in_parallel(lambda n: logger.info("slow function's worker", extra={"n": n}) or [], range(3))

    @observed
    def quick(event, context):
        logger.info("quick function's line")

    first = threading.Thread(target=slow, args=({}, LambdaContext("AggregateStreamFunction")))
    first.start()
    started.wait(5)
    second = threading.Thread(target=quick, args=({}, LambdaContext("UsageFetchFunction")))
    second.start()
    second.join()
    other_done.set()
    first.join()
    logger._logger.removeHandler(lines)

    named = {line["message"]: line.get("function_name") for line in lines.lines}
    assert named["quick function's line"] == "UsageFetchFunction"
    assert named["slow function's error"] == "AggregateStreamFunction"
    workers = [line for line in lines.lines if line["message"] == "slow function's worker"]
    assert len(workers) == 3 and {line.get("function_name") for line in workers} == {"AggregateStreamFunction"}
    outside = logging.LogRecord("usage-meter", logging.INFO, __file__, 1, "the runner's own line", None, None)
    assert "function_name" not in json.loads(logger.registered_formatter.format(outside))


def test_cold_start_is_true_on_a_functions_first_invocation_only():
    lines = _capture()

    @observed
    def handler(event, context):
        logger.info("invoked")

    for _ in range(2):
        handler({}, LambdaContext("ReconcileFunction"))
    logger._logger.removeHandler(lines)
    assert [line["cold_start"] for line in lines.lines if line["message"] == "invoked"] == [True, False]
