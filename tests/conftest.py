"""Shared fixtures: moto-backed tables built from template.yaml, and an in-process gateway."""

from __future__ import annotations

import os

# Before anything creates a boto3 client: fake credentials, one region, no X-Ray.
os.environ.update(
    {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "AgentUsageMeter",
        "POWERTOOLS_SERVICE_NAME": "usage-meter",
        "POWERTOOLS_LOG_LEVEL": "DEBUG",  # every line the code can log is searched for secrets
    }
)
os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
os.environ.pop("AWS_ENDPOINT_URL", None)

import json
import logging
import re
import threading
from collections.abc import Iterator

import pytest
from moto import mock_aws

from local.gateway import Gateway
from local.queues import create_queues
from local.template import Stack
from meter.core import caches
from meter.dal import dynamo, sqs
from tools.admin import create_key

STACK = Stack()


def _serialize_moto_stream_appends() -> None:
    """moto numbers a stream record ``len(items)`` and appends it without a lock, so concurrent
    puts (ingestion writes a batch's records in parallel) could share a sequence number and make
    its shard iterator read records twice. DynamoDB numbers every record of a shard uniquely."""
    from moto.dynamodb.models.table import StreamShard

    unsafe_add, lock = StreamShard.add, threading.Lock()

    def add(self, old, new):
        with lock:
            unsafe_add(self, old, new)

    StreamShard.add = add


def _copy_each_table_once_per_moto_transaction() -> None:
    """moto deep-copies a table once per *action* of a transaction (its rollback copy), so a
    100-action transaction copied the Aggregates table 100 times: copy each table once per call.
    Transactions are serialized while the copy is swapped in (they are atomic in DynamoDB too)."""
    from moto.dynamodb import models

    real_copy, original, lock = models.copy, models.DynamoDBBackend.transact_write_items, threading.Lock()

    class CopyOnce:
        def __init__(self) -> None:
            self.copies: dict[int, object] = {}

        def deepcopy(self, value: object) -> object:
            if not isinstance(value, models.Table):
                return real_copy.deepcopy(value)
            if id(value) not in self.copies:
                self.copies[id(value)] = real_copy.deepcopy(value)
            return self.copies[id(value)]

    def transact_write_items(self, transact_items):
        with lock:
            models.copy = CopyOnce()
            try:
                return original(self, transact_items)
            finally:
                models.copy = real_copy

    models.DynamoDBBackend.transact_write_items = transact_write_items


def _make_moto_updates_all_or_nothing() -> None:
    """moto applies an UpdateExpression to the stored item clause by clause, so a clause DynamoDB
    refuses (an ``ADD`` to a counter stored as a string) leaves the clauses before it applied.
    DynamoDB applies all of an update or none: give the item back as it was when moto raises."""
    import copy

    from moto.dynamodb import models
    from moto.dynamodb.exceptions import ConditionalCheckFailed
    from moto.dynamodb.models.dynamo_type import DynamoType

    original = models.DynamoDBBackend.update_item

    def update_item(self, table_name, key, *args, **kwargs):
        table = self.get_table(table_name)
        hash_value = DynamoType(key[table.hash_key_attr])
        range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr in key else None
        before = table.get_item(hash_value, range_value)
        attrs = copy.deepcopy(before.attrs) if before is not None else None
        try:
            return original(self, table_name, key, *args, **kwargs)
        except ConditionalCheckFailed:
            raise
        except Exception:
            if attrs is None:
                table.delete_item(hash_value, range_value)
            else:
                table.get_item(hash_value, range_value).attrs = attrs
            raise

    models.DynamoDBBackend.update_item = update_item


def _make_moto_queries_read_their_partition() -> None:
    """moto's Query sorts every item of the table on each call, then keeps the queried partition's:
    a test's reads grew slower with all it had stored (most of the suite's time in moto tests). A
    table's Query now starts from its partition, an index's from the items unsorted (it sorts them
    by the index's keys itself); what it answers is the same."""
    import threading

    from moto.dynamodb.models.table import Table

    querying = threading.local()
    original_query, original_all_items = Table.query, Table.all_items

    def query(self, hash_key, *args, **kwargs):
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        querying.scope = (self, None if index_name else hash_key)
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            querying.scope = None

    def all_items(self):
        scope = getattr(querying, "scope", None)
        if scope is None or scope[0] is not self or not self.range_key_attr:
            return original_all_items(self)
        if scope[1] is None:
            return [item for partition in self.items.values() for item in partition.values()]
        return list(self.items[scope[1]].values()) if scope[1] in self.items else []

    Table.query, Table.all_items = query, all_items


_serialize_moto_stream_appends()
_copy_each_table_once_per_moto_transaction()
_make_moto_updates_all_or_nothing()
_make_moto_queries_read_their_partition()
os.environ.update(STACK.environment())


def reset_caches() -> None:
    """Forget every cache of the process: clients, settings, keys, verdicts, rate cards, marks."""
    caches.forget_all()


def create_tables(stack: Stack = STACK) -> None:
    """Create every table of the template."""
    for spec in stack.tables().values():
        dynamo.client().create_table(**spec)


@pytest.fixture
def aws() -> Iterator[None]:
    """moto with the template's tables, fresh for each test."""
    with mock_aws():
        reset_caches()
        create_tables()
        yield
    reset_caches()


@pytest.fixture
def queues(aws: None) -> dict[str, str]:
    """The template's queues in moto (logical id → URL): where the aggregator sets poison aside."""
    return create_queues(STACK, sqs.client())


@pytest.fixture
def gateway(aws: None) -> Gateway:
    """The template's HTTP API, served in process over moto."""
    return Gateway(STACK)


@pytest.fixture
def tokens(aws: None) -> dict[str, str]:
    """Tokens for two tenants with every scope, and single-scope and revoked keys."""
    from tools.admin import revoke_key

    revoked = create_key("acme", ["ingest", "read"])
    revoke_key(revoked.split(":")[0])
    return {
        "acme": create_key("acme", ["ingest", "read", "admin"]),
        "acme_ingest": create_key("acme", ["ingest"]),
        "acme_read": create_key("acme", ["read"]),
        "acme_revoked": revoked,
        "globex": create_key("globex", ["ingest", "read", "admin"]),
    }


# An API secret, a bearer token, or a whole pk_…:sk_… key: none may ever reach a log.
SECRET_IN_LOGS = re.compile(r"sk_[0-9A-Za-z]{30}|Bearer\s+\S|pk_[0-9A-Za-z]{16}:")


class LogCapture(logging.Handler):
    """Keeps every record of a logger as text: message, extra fields and traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = {k: str(v) for k, v in record.__dict__.items() if k not in ("msg", "args", "exc_info")}
        text = record.getMessage() + " " + json.dumps(fields)
        if record.exc_info:
            text += " " + logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


def leaked_secrets(lines: list[str]) -> list[str]:
    """The log lines that hold a secret or an Authorization header value."""
    return [line for line in lines if SECRET_IN_LOGS.search(line)]


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log() -> Iterator[LogCapture]:
    """Capture what the service logs during the whole suite (at DEBUG), then search it."""
    capture = LogCapture()
    service = logging.getLogger(os.environ["POWERTOOLS_SERVICE_NAME"])
    service.addHandler(capture)
    yield capture
    service.removeHandler(capture)
    assert not leaked_secrets(capture.lines), leaked_secrets(capture.lines)[:3]
