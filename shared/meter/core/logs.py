"""Powertools observability shared by every function (service name from POWERTOOLS_SERVICE_NAME).

X-Ray subsegments are opt-in. Importing the X-Ray SDK builds its recorder, which creates a
second botocore session: about 140 ms of every cold start (see ``make bench``). Lambda's active
tracing records every invocation without it; deploy with ``XRaySubsegments=true`` (which sets
``POWERTOOLS_TRACE_DISABLED=false``) to add Powertools Tracer subsegments for each AWS call.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger, Metrics

if TYPE_CHECKING:  # an annotation only: nothing more to import at cold start
    from aws_lambda_powertools.utilities.typing.lambda_context import LambdaContext

logger = Logger()
metrics = Metrics(namespace="AgentUsageMeter")
Result = TypeVar("Result")


def tracing_enabled() -> bool:
    """Whether Powertools Tracer (and so the X-Ray SDK) is in use."""
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "true").strip().lower() not in ("1", "true", "yes")


def traced(handler: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
    """``handler`` under Powertools Tracer when tracing is enabled, else unchanged."""
    if not tracing_enabled():
        return handler
    from aws_lambda_powertools import Tracer

    return Tracer().capture_lambda_handler(handler)


def with_lambda_context(handler: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
    """Powertools' Lambda context keys (``function_name``, request id, ``cold_start``) on every log
    line of the invocation, kept per thread (Powertools' thread-safe keys) rather than on the
    shared logger as ``inject_lambda_context`` keeps them: the local runner runs many functions in
    threads of one process, where shared keys name whichever function set them last."""
    cold = [True]

    @functools.wraps(handler)
    def invoke(event: dict[str, Any], context: LambdaContext) -> Any:
        logger.thread_safe_clear_keys()
        logger.thread_safe_append_keys(
            cold_start=cold[0],
            function_name=context.function_name,
            function_memory_size=context.memory_limit_in_mb,
            function_arn=context.invoked_function_arn,
            function_request_id=context.aws_request_id,
        )
        cold[0] = False
        return handler(event, context)

    return invoke


def with_log_keys(function: Callable[..., Result]) -> Callable[..., Result]:
    """``function`` for worker threads, logging with the calling invocation's keys."""
    keys = logger.thread_safe_get_current_keys()

    def run(*args: Any, **kwargs: Any) -> Result:
        logger.thread_safe_clear_keys()
        logger.thread_safe_append_keys(**keys)
        return function(*args, **kwargs)

    return run


def observed(handler: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
    """A Lambda entry point with Powertools logging context, tracing and metrics flushing."""
    return with_lambda_context(traced(metrics.log_metrics(handler)))
