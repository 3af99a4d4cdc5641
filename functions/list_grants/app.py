"""GET /v1/grants (ours, scope read): one subject's grants, cursor-paged."""

from meter.api.credits import list_grants
from meter.api.http import api_handler, query_parameters
from meter.core.logs import observed


@api_handler("read")
def handle(event, principal) -> dict:
    return list_grants(principal.tenant, query_parameters(event))


lambda_handler = observed(handle)
