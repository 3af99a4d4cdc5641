"""Records-table stream (INSERT only) → exactly-once hourly and daily aggregates."""

from meter.aggregation import handle_stream_records
from meter.logs import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: object) -> dict:
    response = handle_stream_records(event.get("Records", []))
    metrics.add_metric(name="StreamRecordsFailed", unit="Count", value=len(response["batchItemFailures"]))
    return response
