"""GET /api/v1/consumption/identifier/{identifier}/dates (AgentsGT): credits per day of one end user."""

from meter.api.agentsgt import identifier_dates
from meter.api.http import api_handler, path_parameter, query_parameters
from meter.core.logs import observed


@api_handler("read")
def handle(event, principal) -> dict:
    return identifier_dates(principal.tenant, path_parameter(event, "identifier"), query_parameters(event))


lambda_handler = observed(handle)
