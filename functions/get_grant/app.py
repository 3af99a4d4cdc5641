"""GET /v1/grants/{grantId} (ours, scope read): one grant and what is left of it."""

from meter.api.credits import get_grant
from meter.api.http import api_handler, path_parameter
from meter.core.logs import observed


@api_handler("read")
def handle(event, principal) -> dict:
    return get_grant(principal.tenant, path_parameter(event, "grantId"))


lambda_handler = observed(handle)
