"""GET /api/v1/consumption/identifier/{identifier}/dates (AgentsGT): credits per day."""

from meter.agentsgt import identifier_dates
from meter.http import api_handler, path_parameter, query_parameters
from meter.logs import logger, metrics, tracer


@api_handler("read")
def get_identifier_dates(event, principal) -> dict:
    return identifier_dates(principal.tenant, path_parameter(event, "identifier"), query_parameters(event))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: object) -> dict:
    return get_identifier_dates(event, context)
