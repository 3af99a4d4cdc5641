"""GET /api/v1/consumption/organization/{orgId}/agents (AgentsGT): credits per agent."""

from meter.api.agentsgt import organization_agents
from meter.api.http import api_handler, path_parameter, query_parameters
from meter.core.logs import observed


@api_handler("read")
def handle(event, principal) -> dict:
    return organization_agents(principal.tenant, path_parameter(event, "orgId"), query_parameters(event))


lambda_handler = observed(handle)
