"""GET /v1/alerts/{alertId}/status (ours, scope read): the current period's exact value and thresholds."""

from meter.api.alerts import alert_status
from meter.api.http import api_handler, path_parameter
from meter.core.logs import observed


@api_handler("read")
def handle(event, principal) -> dict:
    return alert_status(principal.tenant, path_parameter(event, "alertId"))


lambda_handler = observed(handle)
