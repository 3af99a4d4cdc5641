"""Alert firings (Alerts-table stream inserts) and their retries (queue) → EventBridge and webhooks."""

from meter.alerts.delivery import handle_deliveries
from meter.core.logs import observed


def handle(event: dict, context: object) -> dict:
    return handle_deliveries(event)


lambda_handler = observed(handle)
