"""How a batch reaches the meter: over HTTP (``POST /v1/events``) or through the SQS ingest queue.

A transport sends one batch and says, per event, what became of it: ``delivered`` (stored now or
before: a duplicate is a success), ``rejected`` (the meter will never take it as it is: reported,
never retried), ``resend`` (the batch was refused for other events; send this one again at once) or
``retry`` (this one failed in a way that may pass: send it again after a backoff).
A failure that may pass (network, 429, 5xx) raises ``Transient`` for the whole batch; a batch over
the meter's size limit raises ``TooLarge`` so the sender halves it.
"""

from __future__ import annotations

import gzip
import http.client
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from agentmeter import __version__

DELIVERED, REJECTED, RESEND, RETRY = "delivered", "rejected", "resend", "retry"


@dataclass
class Outcome:
    """What became of one event of a batch: its status, whether the meter had it already, and why not."""

    status: str
    duplicate: bool = False
    reason: str = ""


@dataclass
class Transient(Exception):
    """The whole batch failed in a way that may pass; ``retry_after`` is the server's word, in seconds."""

    reason: str
    retry_after: float | None = None

    def __str__(self) -> str:
        return self.reason


class TooLarge(Exception):
    """The batch is over the meter's size limit: send it in halves."""


class Transport(Protocol):
    """Sends one batch of event bodies; one ``Outcome`` per event, in order."""

    def send(self, events: list[dict[str, Any]]) -> list[Outcome]: ...


def _retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None  # an HTTP date: the backoff decides


@dataclass
class HttpTransport:
    """``POST {url}/v1/events`` with a bearer key, gzip-compressed, over a kept-alive connection per thread."""

    url: str
    key: str
    timeout: float = 10.0
    compress: bool = True
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be http(s)://host[:port][/base], not {self.url!r}")
        self._scheme, self._netloc, self._path = parts.scheme, parts.netloc, parts.path + "/v1/events"

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            connection = kind(self._netloc, timeout=self.timeout)
            self._local.connection = connection
        return connection

    def _post(self, body: bytes) -> tuple:
        headers = {
            "Authorization": f"Bearer {self.key}",
            "Content-Type": "application/json",
            "User-Agent": f"agentmeter-python/{__version__}",
        }
        if self.compress:
            body, headers["Content-Encoding"] = gzip.compress(body, compresslevel=5), "gzip"
        connection = self._connection()
        try:
            connection.request("POST", self._path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheader("Retry-After"), response.read()
        except (OSError, http.client.HTTPException) as failed:
            connection.close()
            self._local.connection = None
            raise Transient(f"network: {type(failed).__name__}: {failed}") from None

    def send(self, events: list[dict[str, Any]]) -> list[Outcome]:
        status, retry_after, raw = self._post(json.dumps({"events": events}, separators=(",", ":")).encode())
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        if status == 429 or status >= 500:
            raise Transient(f"HTTP {status}: {_message(body, raw)}", _retry_after(retry_after))
        if status == 413 and len(events) > 1:
            raise TooLarge(_message(body, raw))
        if status in (200, 409) and isinstance(body.get("results"), list):
            return [_from_result(result) for result in body["results"]]
        if status == 400 and isinstance(body.get("details"), list) and body["details"]:
            return _per_event_problems(len(events), body["details"])
        return [Outcome(REJECTED, reason=f"HTTP {status}: {_message(body, raw)}") for _ in events]


def _message(body: Any, raw: bytes) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"]
    return raw[:200].decode("utf-8", "replace")


def _from_result(result: dict[str, Any]) -> Outcome:
    status = result.get("status")
    if status in ("accepted", "duplicate"):
        return Outcome(DELIVERED, duplicate=status == "duplicate")
    return Outcome(REJECTED, reason="conflict: this id is stored with a different body")


def _per_event_problems(count: int, details: list[dict[str, Any]]) -> list[Outcome]:
    """A 400 names each invalid event and stored nothing: those are rejected, the rest resent."""
    outcomes = [Outcome(RESEND) for _ in range(count)]
    for problem in details:
        index = problem.get("index")
        if isinstance(index, int) and 0 <= index < count:
            reason = f"invalid field '{problem.get('field')}': {problem.get('reason')}"
            if outcomes[index].status == REJECTED:
                reason = f"{outcomes[index].reason}; {reason}"
            outcomes[index] = Outcome(REJECTED, reason=reason)
    return outcomes


MAX_SQS_MESSAGE_BYTES = 250_000  # under SQS's 256 KiB, with room for the attributes


@dataclass
class SqsTransport:
    """Sends batches to the meter's ingest queue (producers inside AWS; IAM decides who may send).

    Each message holds a batch of events and names the tenant in its ``tenant`` attribute. A message
    the queue took is durable: the meter stores it (or parks it, with the reason) later.
    """

    queue_url: str
    tenant: str
    client: Any = None

    def __post_init__(self) -> None:
        if self.client is None:
            import boto3  # only this transport needs it

            self.client = boto3.client("sqs")

    def _messages(self, events: list[dict[str, Any]]) -> list[list[int]]:
        groups: list[list[int]] = [[]]
        size = 0
        for index, event in enumerate(events):
            length = len(json.dumps(event, separators=(",", ":"))) + 1
            if groups[-1] and size + length > MAX_SQS_MESSAGE_BYTES:
                groups.append([])
                size = 0
            groups[-1].append(index)
            size += length
        return groups

    def send(self, events: list[dict[str, Any]]) -> list[Outcome]:
        outcomes = [Outcome(DELIVERED) for _ in events]
        groups = self._messages(events)
        for start in range(0, len(groups), 10):  # SendMessageBatch takes 10 messages
            chunk = groups[start : start + 10]
            entries = [
                {
                    "Id": str(number),
                    "MessageBody": json.dumps({"events": [events[i] for i in group]}, separators=(",", ":")),
                    "MessageAttributes": {"tenant": {"DataType": "String", "StringValue": self.tenant}},
                }
                for number, group in enumerate(chunk)
            ]
            try:
                answer = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception as failed:  # botocore's errors: throttling, network, credentials
                raise Transient(f"sqs: {type(failed).__name__}: {failed}") from None
            for failure in answer.get("Failed", []):
                status = REJECTED if failure.get("SenderFault") else RETRY
                for index in chunk[int(failure["Id"])]:
                    outcomes[index] = Outcome(status, reason=f"sqs: {failure.get('Code')}: {failure.get('Message')}")
        return outcomes
