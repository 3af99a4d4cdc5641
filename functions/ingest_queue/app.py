"""SQS ingestion: each message holds one event or {"events": [...]} for a registered tenant.
Messages that cannot be ingested are parked durably (meter.ingest.queue), never dropped."""

import os

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from meter.core.logs import observed
from meter.ingest.queue import ingest_or_park

processor = BatchProcessor(event_type=EventType.SQS)
MAX_RECEIVES = int(os.environ.get("INGEST_MAX_RECEIVES", "5"))  # the queue's RedrivePolicy maxReceiveCount


def _ingest(record):
    return ingest_or_park(record, MAX_RECEIVES)


def handle(event: dict, context: object) -> dict:
    return process_partial_response(event=event, record_handler=_ingest, processor=processor, context=context)


lambda_handler = observed(handle)
