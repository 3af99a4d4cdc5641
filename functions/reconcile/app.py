"""Hourly (EventBridge Scheduler): reconcile every hour due since the last run, and the windows
earlier runs kept for retry (meter.counting.reconcile). Metrics UncountedEvents, DriftedAggregates, RepairedAggregates,
OvercountedAggregates, DeferredWindows, RefusedRepairs, ReconcileFailures, UnreadableRecords."""

from meter.core.logs import metrics, observed
from meter.core.timerange import now_ms
from meter.counting.reconcile import reconcile_due

SAFETY_MS = 60_000  # stop starting hours this long before the function's timeout

METRICS = {
    "uncounted": "UncountedEvents",
    "drifted": "DriftedAggregates",
    "repaired": "RepairedAggregates",
    "overcounted": "OvercountedAggregates",
    "deferred": "DeferredWindows",
    "refused": "RefusedRepairs",
    "failed": "ReconcileFailures",
    "unreadable": "UnreadableRecords",
}


def handle(event: dict, context) -> dict:
    report = reconcile_due(now_ms(), out_of_time=lambda: context.get_remaining_time_in_millis() < SAFETY_MS)
    for field, metric in METRICS.items():
        metrics.add_metric(name=metric, unit="Count", value=getattr(report, field))
    if report.failed:
        # The windows are kept for retry either way; failing the invocation also sends it to the
        # function's failure destination, where the ReconcileFailures alarm and the runbook start.
        raise RuntimeError(f"{report.failed} window(s) failed to reconcile; they are kept and retried")
    return {name: getattr(report, name) for name in report.COUNTS}


lambda_handler = observed(handle)
