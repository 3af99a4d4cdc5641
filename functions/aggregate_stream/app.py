"""Records-table stream (INSERT only) → exactly-once hourly and daily aggregates."""

from meter.aggregation import handle_stream_records
from meter.logs import metrics, observed


def handle(event: dict, context: object) -> dict:
    response = handle_stream_records(event.get("Records", []))
    metrics.add_metric(name="StreamRecordsFailed", unit="Count", value=len(response["batchItemFailures"]))
    return response


lambda_handler = observed(handle)
