"""GET /v1/alerts (ours, scope read): the tenant's alerts, a page at a time."""

from meter.api.alerts import list_alerts
from meter.api.http import api_handler, query_parameters
from meter.core.logs import observed


@api_handler("read")
def handle(event, principal) -> dict:
    cursor = query_parameters(event).get("cursor")
    return list_alerts(principal.tenant, cursor, admin="admin" in principal.scopes)


lambda_handler = observed(handle)
