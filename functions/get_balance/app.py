"""GET /v1/balance (ours, scope read): a subject's credits now."""

from meter.api.credits import get_balance
from meter.api.http import api_handler, query_parameters
from meter.core.logs import observed


@api_handler("read")
def handle(event, principal) -> dict:
    return get_balance(principal.tenant, query_parameters(event))


lambda_handler = observed(handle)
