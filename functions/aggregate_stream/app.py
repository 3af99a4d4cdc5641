"""Records-table stream (INSERT only), per shard and tumbling window → exactly-once hourly and daily aggregates."""

from meter.core.logs import observed
from meter.counting.aggregation import handle_window


def handle(event: dict, context: object) -> dict:
    return handle_window(event)


lambda_handler = observed(handle)
