"""Hourly (EventBridge schedule): recount closed buckets from the records, count events the
stream dropped, repair drifted aggregates; metrics DriftedAggregates, RepairedAggregates,
UncountedEvents."""

from datetime import datetime

from meter.logs import metrics, observed
from meter.reconcile import reconcile_all
from meter.timerange import now_ms, to_ms


def handle(event: dict, context: object) -> dict:
    scheduled = event.get("time")
    now = to_ms(datetime.fromisoformat(scheduled.replace("Z", "+00:00"))) if scheduled else now_ms()
    report = reconcile_all(now)
    metrics.add_metric(name="DriftedAggregates", unit="Count", value=report.drifted)
    metrics.add_metric(name="RepairedAggregates", unit="Count", value=report.repaired)
    metrics.add_metric(name="UncountedEvents", unit="Count", value=report.uncounted)
    return {k: v for k, v in vars(report).items() if k != "drift"}


lambda_handler = observed(handle)
