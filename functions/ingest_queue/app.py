"""SQS ingestion: each message holds one event or {"events": [...]} for a registered tenant."""

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from meter.logs import logger, metrics, tracer
from meter.queue import ingest_message

processor = BatchProcessor(event_type=EventType.SQS)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: object) -> dict:
    return process_partial_response(event=event, record_handler=ingest_message, processor=processor, context=context)
