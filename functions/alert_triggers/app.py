"""GET /v1/alerts/{alertId}/triggers (ours, scope read): every firing, newest first, paged."""

from meter.api.alerts import list_triggers
from meter.api.http import api_handler, path_parameter, query_parameters
from meter.core.logs import observed


@api_handler("read")
def handle(event, principal) -> dict:
    cursor = query_parameters(event).get("cursor")
    return list_triggers(principal.tenant, path_parameter(event, "alertId"), cursor)


lambda_handler = observed(handle)
