"""GET /v1/alerts/{alertId} (ours, scope read): one alert."""

from meter.api.alerts import get_alert
from meter.api.http import api_handler, path_parameter
from meter.core.logs import observed


@api_handler("read")
def handle(event, principal) -> dict:
    return get_alert(principal.tenant, path_parameter(event, "alertId"), admin="admin" in principal.scopes)


lambda_handler = observed(handle)
