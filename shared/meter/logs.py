"""Powertools observability shared by every function (service name from POWERTOOLS_SERVICE_NAME).

X-Ray subsegments are opt-in. Importing the X-Ray SDK builds its recorder, which creates a
second botocore session: about 140 ms of every cold start (see ``make bench``). Lambda's active
tracing records every invocation without it; deploy with ``XRaySubsegments=true`` (which sets
``POWERTOOLS_TRACE_DISABLED=false``) to add Powertools Tracer subsegments for each AWS call.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics(namespace="AgentUsageMeter")


def tracing_enabled() -> bool:
    """Whether Powertools Tracer (and so the X-Ray SDK) is in use."""
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "true").strip().lower() not in ("1", "true", "yes")


def traced(handler: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
    """``handler`` under Powertools Tracer when tracing is enabled, else unchanged."""
    if not tracing_enabled():
        return handler
    from aws_lambda_powertools import Tracer

    return Tracer().capture_lambda_handler(handler)


def observed(handler: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
    """A Lambda entry point with Powertools logging context, tracing and metrics flushing."""
    return logger.inject_lambda_context(clear_state=True)(traced(metrics.log_metrics(handler)))
