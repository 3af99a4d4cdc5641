"""GET /v2/gen-ai/agents/{uuid}/usage (DigitalOcean Gradient): token measurements of one agent."""

from meter.api.gradient import agent_usage
from meter.api.http import api_handler, gradient_error_body, path_parameter, query_parameters
from meter.core.logs import observed


@api_handler("read", errors=gradient_error_body)
def handle(event, principal) -> dict:
    return agent_usage(principal.tenant, path_parameter(event, "uuid"), query_parameters(event))


lambda_handler = observed(handle)
