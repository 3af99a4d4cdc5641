"""Records-table stream (INSERT only), per shard and tumbling window → exactly-once hourly and daily aggregates."""

from meter.aggregation import handle_window
from meter.logs import observed


def handle(event: dict, context: object) -> dict:
    return handle_window(event)


lambda_handler = observed(handle)
