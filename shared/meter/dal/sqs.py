"""SQS plumbing: one cached client, and the URL of a template queue named in the environment."""

from __future__ import annotations

import os
from typing import Any

from meter.core.caches import memoized
from meter.dal import aws


@memoized(1)
def client() -> Any:
    """The process-wide SQS client (created on first use)."""
    return aws.session().client("sqs")


@memoized(16)
def queue_url(variable: str) -> str:
    """A queue of the template (its URL deployed; its name locally, where URLs are per endpoint)."""
    named = os.environ[variable]
    return named if named.startswith("https://") else client().get_queue_url(QueueName=named)["QueueUrl"]


def send(variable: str, body: str, **extra: Any) -> None:
    """Send one message to the queue named by ``variable``."""
    client().send_message(QueueUrl=queue_url(variable), MessageBody=body, **extra)
