"""GET /v1/alerts (ours, scope read): the tenant's alerts, a page at a time."""

from meter.alerts import list_alerts
from meter.http import api_handler, query_parameters
from meter.logs import observed


@api_handler("read")
def handle(event, principal) -> dict:
    return list_alerts(principal.tenant, query_parameters(event).get("cursor"))


lambda_handler = observed(handle)
