"""GET /api/v1/consumption/agent/{agentId}/models (AgentsGT): credits per model of one agent."""

from meter.api.agentsgt import agent_models
from meter.api.http import api_handler, path_parameter, query_parameters
from meter.core.logs import observed


@api_handler("read")
def handle(event, principal) -> dict:
    return agent_models(principal.tenant, path_parameter(event, "agentId"), query_parameters(event))


lambda_handler = observed(handle)
