"""GET /api/v1/consumption/organization/{orgId}/summary (AgentsGT): the tenant's total credits."""

from meter.api.agentsgt import organization_summary
from meter.api.http import api_handler, path_parameter, query_parameters
from meter.core.logs import observed


@api_handler("read")
def handle(event, principal) -> dict:
    return organization_summary(principal.tenant, path_parameter(event, "orgId"), query_parameters(event))


lambda_handler = observed(handle)
