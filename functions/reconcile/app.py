"""Hourly (EventBridge schedule): recount the buckets that closed past the stream's horizon from the
records and set drifted aggregates to the recount; metrics DriftedAggregates, RepairedAggregates,
DeferredWindows, UnreadableRecords."""

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
    metrics.add_metric(name="DeferredWindows", unit="Count", value=report.deferred)
    metrics.add_metric(name="UnreadableRecords", unit="Count", value=report.unreadable)
    return {k: v for k, v in vars(report).items() if k != "drift"}


lambda_handler = observed(handle)
