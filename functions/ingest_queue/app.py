"""SQS ingestion: each message holds one event or {"events": [...]} for a registered tenant."""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from meter.logs import observed
from meter.queue import ingest_message

processor = BatchProcessor(event_type=EventType.SQS)


def handle(event: dict, context: object) -> dict:
    return process_partial_response(event=event, record_handler=ingest_message, processor=processor, context=context)


lambda_handler = observed(handle)
