"""Alert checks that did not fit an aggregator invocation's budget (queue) → firings."""

from meter.alerts.rules import handle_checks
from meter.core.logs import observed


def handle(event: dict, context: object) -> dict:
    return handle_checks(event)


lambda_handler = observed(handle)
