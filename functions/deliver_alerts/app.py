"""Alert firings (Alerts-table stream inserts) and their retries (queue) → EventBridge and webhooks."""

from meter.alert_delivery import handle_deliveries
from meter.logs import observed


def handle(event: dict, context: object) -> dict:
    return handle_deliveries(event)


lambda_handler = observed(handle)
